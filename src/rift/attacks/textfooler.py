"""TextFooler (Jin et al. 2020), reduced to its search: deletion importance, then greedy substitution."""

from __future__ import annotations

import random

from rift.attacks.engine import Search, Target, WordSubstitutionAttack, greedy_substitution


class TextFooler(WordSubstitutionAttack):
    """Importance of word i = the drop of p(y) when word i is deleted. In descending importance, every substitute
    of the word is tried on the current text (``greedy_substitution``).

    Simplified from the paper: substitutes come from the substitution source (counter-fitted neighbours, as in
    the paper) and no part-of-speech or sentence-similarity (USE) check is made; the engine's constraints apply.
    Only words with substitutes get an importance, since no other word can be changed.
    """

    name = "textfooler"

    def search(self, target: Target, rng: random.Random) -> Search:
        positions = target.positions
        if not positions or target.max_changes == 0:
            return {}
        probabilities = yield [{i: ""} for i in positions]  # each word deleted: a probe, not a candidate
        p_clean = target.true_probability(target.clean_probabilities).item()
        drops = [p_clean - q for q in target.true_probability(probabilities).tolist()]
        order = [positions[k] for k in sorted(range(len(positions)), key=lambda k: -drops[k])]
        return (yield from greedy_substitution(target, order))
