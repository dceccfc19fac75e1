"""Certificates of randomised smoothing for text: SAFER (Ye et al. 2020) against word substitutions, RanMASK (Zeng
et al. 2023) against any replacement of up to d words.

Both certify a smoothed classifier g(x): the class that the base model f predicts most often over random copies of
x. With c the class that a first sample of copies selects and ``p_lower`` a one-sided Clopper-Pearson lower bound
on P(f(copy of x) = c) from a second sample (rift.statistics.clopper_pearson_lower), g(x') = c for every x' whose
copies lie within total variation ``p_lower - 1/2`` of x's, because P(f(copy of x') = c) >= p_lower - TV > 1/2.
The certificate holds with the bound's confidence; it is a lower bound on robustness within its threat model,
where an attack gives an upper one.

- SAFER: a copy replaces each word by a uniform draw from its perturbation set
  (rift.substitutions.perturbation_sets). Positions are drawn independently, so two texts' copies differ by at most
  1 - prod_j q_j, with q_j the overlap of the two words' sets at position j (1 where they are the same word). The
  threat model: any word replaced by any of the substitution source's substitutes, any number of words at once.
- RanMASK: a copy keeps ``kept`` of a text's h words (rift.smoothing.kept_words), drawn without replacement, and
  masks the rest. Two texts that differ in d words give the same copy unless a changed word is kept: their copies
  differ by at most 1 - C(h - d, kept) / C(h, kept). The threat model: any d words replaced by any words (the text
  keeps its h words; punctuation marks, which copies never mask, stay as they are).

The copies themselves are rift.smoothing's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

CERTIFIED_MARGIN = 0.5  # g keeps c while c's share of the copies stays above one half


def safer_certified(p_lower: float, overlaps: Iterable[float]) -> bool:
    """SAFER's certificate: ``p_lower`` less the largest total-variation distance an attacker can reach (1 minus
    the product of every position's worst overlap) stays above one half."""
    return p_lower - (1.0 - math.prod(overlaps)) > CERTIFIED_MARGIN


def ranmask_distance(num_words: int, kept: int, changed: int) -> float:
    """The largest total-variation distance between the RanMASK copies of two texts of ``num_words`` words that
    differ in ``changed`` of them: the chance that a copy keeps at least one changed word."""
    return 1.0 - math.comb(num_words - changed, kept) / math.comb(num_words, kept)


def ranmask_radius(p_lower: float, num_words: int, kept: int) -> int | None:
    """The most words any attacker may change without changing the smoothed prediction (0: only the text itself
    is certified); None when not even that. The distance grows with the number of words changed."""
    radius = None
    for changed in range(num_words + 1):
        if p_lower - ranmask_distance(num_words, kept, changed) <= CERTIFIED_MARGIN:
            break
        radius = changed
    return radius
