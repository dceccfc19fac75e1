"""Paired comparison of two training methods in a seeded grid.

Cells of the same task and seed share their data order and attacked examples, so the difference method - baseline
is taken seed by seed, with Student's t interval over seeds (``rift.statistics.seed_interval``: it counts the
variance of training seeds and of examples, and is the interval to judge two methods by), and an attack's
outcomes are compared example by example: how many attacked examples only one of the two models still classifies
correctly, with an exact McNemar test of whether either side is more likely, and Newcombe's paired 95% interval for
the difference of robust accuracies (examples pooled over seeds).
"""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

from rift.statistics import paired_difference_interval, seed_interval

MODEL_DIFFERENCES = ("test_accuracy", "dev_accuracy", "retention_cka", "retention_mi_nce")


def exact_mcnemar(only_a: int, only_b: int) -> float:
    """Two-sided p-value of the exact McNemar test: under the null hypothesis each discordant example favours either
    side with probability 1/2."""
    discordant = only_a + only_b
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2 ** discordant
    return min(1.0, 2 * tail)


def difference_stats(values: list[float]) -> dict:
    """Mean, spread and the seed-level 95% interval (``rift.statistics.seed_interval``) of per-seed differences."""
    interval = seed_interval(values)
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values, "interval": None if interval is None else list(interval)}


def compare_methods(records: list[dict], methods: list[str], attacks: list[str], outcomes) -> list[dict]:
    """Every later method of ``methods`` against every earlier one, per task, over the seeds both have.

    ``records`` are the grid's cell records (task, method, seed, metrics); ``outcomes(record, attack)`` says, per
    example that cell's ``attack`` attacked (by index), whether it is still classified correctly after the attack
    (a clean error counts as not)."""
    cells = {(r["task"], r["method"], r["seed"]): r for r in records}
    held: dict[tuple[str, str], dict[int, bool]] = {}  # each cell's outcomes are read once, not once per pair

    def held_by(record: dict, attack: str) -> dict[int, bool]:
        key = (record["directory"], attack)
        if key not in held:
            held[key] = outcomes(record, attack)
        return held[key]

    comparisons = []
    for task in dict.fromkeys(r["task"] for r in records):
        for baseline, method in itertools.combinations(methods, 2):
            seeds = sorted(seed for (t, m, seed) in cells if t == task and m == method
                           and (task, baseline, seed) in cells)
            if not seeds:
                continue
            pairs = [(cells[task, method, seed], cells[task, baseline, seed]) for seed in seeds]
            differences = {}
            for name in (*MODEL_DIFFERENCES, *(f"{attack}/robust_accuracy" for attack in attacks)):
                values = [a[name] - b[name] for a, b in pairs if a.get(name) is not None and b.get(name) is not None]
                if len(values) == len(pairs):
                    differences[name] = difference_stats(values)
            held_only = {}
            for attack in attacks:
                both = only_method = only_baseline = examples = 0
                for a, b in pairs:
                    held_a, held_b = held_by(a, attack), held_by(b, attack)
                    shared = held_a.keys() & held_b.keys()  # the same seeded sample; an unfinished attack has fewer
                    both += sum(held_a[i] and held_b[i] for i in shared)
                    only_method += sum(held_a[i] and not held_b[i] for i in shared)
                    only_baseline += sum(held_b[i] and not held_a[i] for i in shared)
                    examples += len(shared)
                if examples:
                    held_only[attack] = {
                        "method": only_method, "baseline": only_baseline, "both": both, "examples": examples,
                        "p_value": exact_mcnemar(only_method, only_baseline),
                        "difference": (only_method - only_baseline) / examples,
                        "difference_interval": list(paired_difference_interval(both, only_method, only_baseline,
                                                                               examples)),
                    }
            comparisons.append({"task": task, "method": method, "baseline": baseline, "seeds": seeds,
                                "differences": differences, "held_only": held_only})
    return comparisons
