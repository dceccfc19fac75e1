"""PWWS, probability weighted word saliency (Ren et al. 2019)."""

from __future__ import annotations

import random

import torch

from rift.attacks.engine import Search, Target, WordSubstitutionAttack, greedy_substitution


class PWWS(WordSubstitutionAttack):
    """Saliency of word i = p(y|x) - p(y|x with word i replaced by the unknown token); w*_i = the substitute that
    lowers p(y) most in the clean text, by dp_i; words are visited in descending softmax(saliency)_i * dp_i.

    The visit re-scores, as TextAttack's PWWS does, every substitute of the word in the current (already
    perturbed) text (``greedy_substitution``): the substitute best alone may not be best after earlier changes.
    The first visit's candidates were scored already and cost no query. Like TextAttack, a step whose best
    substitution does not lower p(y) is not kept (the original PWWS keeps w*_i). Only words with substitutes are
    scored: the softmax's normaliser is shared by all words, so leaving the others out changes no score's rank and
    saves their queries.
    """

    name = "pwws"
    title = "PWWS"

    def search(self, target: Target, rng: random.Random) -> Search:
        positions = target.positions
        if not positions or target.max_changes == 0:
            return {}
        unknown = self.model.tokenizer.unk_token or ""  # a tokenizer without one: delete the word instead
        singles = target.admissible({}, [(i, word) for i in positions for word in target.substitutes[i]])
        probabilities = yield [{i: unknown} for i in positions] + [{i: word} for i, word in singles]
        p_clean = target.true_probability(target.clean_probabilities).item()
        p = target.true_probability(probabilities).tolist()
        saliency = torch.tensor([p_clean - q for q in p[: len(positions)]])
        lowest: dict[int, float] = {}  # position -> p(y) with w*, the substitute that lowers it most
        for (i, _), q in zip(singles, p[len(positions) :]):
            lowest[i] = min(lowest.get(i, q), q)
        weights = saliency.softmax(0).tolist()
        # a word whose every substitute a context constraint rejects can lower p(y) by nothing
        scores = [weight * (p_clean - lowest.get(i, p_clean)) for weight, i in zip(weights, positions)]
        order = sorted(range(len(positions)), key=lambda k: -scores[k])  # stable: ties keep text order
        return (yield from greedy_substitution(target, [positions[k] for k in order]))


class WordNetPWWS(PWWS):
    """PWWS over WordNet's synonyms whatever the run's ``--synonyms``: TextAttack's ``PWWSRen2019`` recipe, an
    attacker's own substitutes, which a model trained on counter-fitted neighbours never saw."""

    name = "pwws-wordnet"
    title = "PWWS (WordNet)"
    synonyms = "wordnet"
