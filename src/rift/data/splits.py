"""Seeded, class-stratified subsets and splits, so that small samples keep the class balance of the whole."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence

from rift.data.examples import Example


def _largest_remainder(n: int, weights: Sequence[float]) -> list[int]:
    """Integer shares of n proportional to weights that sum to n; ties go to the earlier weight (deterministic)."""
    total = sum(weights)
    quotas = [n * w / total for w in weights]
    shares = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (shares[i] - quotas[i], i))
    for i in by_remainder[: n - sum(shares)]:
        shares[i] += 1
    return shares


def _stratified_indices(labels: Sequence[int], n: int, rng: random.Random) -> list[int]:
    """n positions drawn per class in proportion to the class counts, in shuffled order."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    classes = sorted(by_class)
    shares = _largest_remainder(n, [len(by_class[c]) for c in classes])
    chosen = [i for c, k in zip(classes, shares) for i in rng.sample(by_class[c], k)]
    rng.shuffle(chosen)
    return chosen


def stratified_subset(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """n examples with the class proportions of the whole, in a seeded shuffled order.

    All examples, in their order, if n is None or at least len(examples).
    """
    if n is None or n >= len(examples):
        return examples
    rng = random.Random(seed)
    return [examples[i] for i in _stratified_indices([e.label for e in examples], n, rng)]


def stratified_split(examples: list[Example], fractions: tuple[float, ...], seed: int) -> list[list[Example]]:
    """Disjoint parts of the given sizes (fractions summing to 1), each stratified by class, deterministic per seed.

    Parts are carved one after another from what is left, each stratified by largest remainder, so the part sizes add
    up to exactly len(examples) and each part keeps the class proportions up to rounding.
    """
    if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    sizes = _largest_remainder(len(examples), fractions)
    rng = random.Random(seed)
    remaining = list(examples)
    parts = []
    for size in sizes:
        chosen = _stratified_indices([e.label for e in remaining], size, rng)
        parts.append([remaining[i] for i in chosen])
        taken = set(chosen)
        remaining = [e for i, e in enumerate(remaining) if i not in taken]
    return parts
