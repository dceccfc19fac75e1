"""PWWS, probability weighted word saliency (Ren et al. 2019), as METHOD 4 describes it."""

from __future__ import annotations

import random

import torch

from rift.attacks.engine import Search, Target, WordSubstitutionAttack


class PWWS(WordSubstitutionAttack):
    """Saliency of word i = p(y|x) - p(y|x with word i replaced by the unknown token); w*_i = the substitute that
    lowers p(y) most, by dp_i; words are substituted greedily in descending softmax(saliency)_i * dp_i until the
    prediction changes.

    Only words with substitutes are scored: the softmax's normaliser is shared by all words, so leaving the
    others out changes no score's rank and saves their queries. Like TextAttack, a greedy step whose substitution
    does not lower p(y) is not kept (the original PWWS keeps it); testing it costs the same one query.
    """

    name = "pwws"

    def search(self, target: Target, rng: random.Random) -> Search:
        positions = target.positions
        if not positions or target.max_changes == 0:
            return {}
        unknown = self.model.tokenizer.unk_token or ""  # a tokenizer without one: delete the word instead
        singles = [(i, word) for i in positions for word in target.substitutes[i]]
        probabilities = yield [{i: unknown} for i in positions] + [{i: word} for i, word in singles]
        p_clean = target.true_probability(target.clean_probabilities).item()
        p = target.true_probability(probabilities).tolist()
        saliency = torch.tensor([p_clean - q for q in p[: len(positions)]])
        best: dict[int, tuple[float, str]] = {}  # position -> (p(y) with w*, w*)
        for (i, word), q in zip(singles, p[len(positions) :]):
            if i not in best or q < best[i][0]:
                best[i] = (q, word)
        weights = saliency.softmax(0).tolist()
        scores = [weight * (p_clean - best[i][0]) for weight, i in zip(weights, positions)]
        order = sorted(range(len(positions)), key=lambda k: -scores[k])  # stable: ties keep text order

        current: dict[int, str] = {}
        p_current = p_clean
        for k in order:
            if len(current) == target.max_changes:
                break
            i = positions[k]
            candidate = current | {i: best[i][1]}
            probabilities = yield [candidate]
            if target.succeeded(probabilities)[0]:
                return candidate
            q = target.true_probability(probabilities)[0].item()
            if q < p_current:
                current, p_current = candidate, q
        return current
