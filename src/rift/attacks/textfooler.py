"""TextFooler (Jin et al. 2020): deletion importance, then greedy substitution under its part-of-speech and
sentence-similarity checks."""

from __future__ import annotations

import random
from collections.abc import Sequence

from rift.attacks.constraints import ContextConstraint, PartOfSpeechMatch, SentenceSimilarity
from rift.attacks.engine import Search, Target, WordSubstitutionAttack, greedy_substitution
from rift.attacks.wrapper import ModelWrapper
from rift.substitutions import SubstitutionSource


class TextFooler(WordSubstitutionAttack):
    """Importance of word i = the drop of p(y) when word i is deleted. In descending importance, every substitute
    of the word that passes the context constraints in the current text is tried (``greedy_substitution``).

    The constraints are TextFooler's own unless ``constraints`` is given: the substitute's part of speech matches the
    original word's (nouns and verbs may swap), and the Universal Sentence Encoder similarity of the 15-word window
    around it, before and after, is at least 0.840845057 (``rift.attacks.constraints``). Substitutes come from the
    substitution source (TextFooler takes 50 counter-fitted neighbours with cosine >= 0.5; the counter-fitted source
    here has Jia et al.'s 8). Only words with substitutes get an importance, since no other word can be changed.
    """

    name = "textfooler"
    title = "TextFooler"

    @classmethod
    def with_protocol(cls, options, constraints, query_budget_per_word):
        # TextFooler keeps its part-of-speech check; the protocol's similarity check replaces TextFooler's own
        return super().with_protocol(options, (PartOfSpeechMatch(), *constraints), query_budget_per_word)

    def __init__(
        self, model: ModelWrapper, source: SubstitutionSource, *,
        constraints: Sequence[ContextConstraint] | None = None, **options,
    ) -> None:
        if constraints is None:
            constraints = (PartOfSpeechMatch(), SentenceSimilarity())
        super().__init__(model, source, constraints=constraints, **options)

    def search(self, target: Target, rng: random.Random) -> Search:
        positions = target.positions
        if not positions or target.max_changes == 0:
            return {}
        probabilities = yield [{i: ""} for i in positions]  # each word deleted: a probe, not a candidate
        p_clean = target.true_probability(target.clean_probabilities).item()
        drops = [p_clean - q for q in target.true_probability(probabilities).tolist()]
        order = [positions[k] for k in sorted(range(len(positions)), key=lambda k: -drops[k])]
        return (yield from greedy_substitution(target, order))
