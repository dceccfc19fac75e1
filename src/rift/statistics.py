"""95% intervals for accuracies and for paired differences of accuracies (the same examples under two models), and
the binomial bound and test that randomised smoothing's certificates rest on (rift.evaluation.certification).

Wilson's score interval stays inside [0, 1] and keeps its coverage near 0 and 1, where robust accuracies live; a
difference between two models measured on the same examples takes Newcombe's hybrid score interval for paired
proportions (Newcombe 1998, method 10), which uses the correlation of the two outcomes instead of treating the
samples as independent.

Newcombe's interval answers "on these examples, with these two trained models"; it ignores that another training
seed gives other models. A difference between two training methods over seeds takes ``seed_interval``: Student's t
interval over the per-seed differences. Each seed's difference is measured on its own attacked sample, so its
spread over seeds carries both sources of variance, the training seed's and the examples'; with few seeds the
interval is wide, as it should be.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson's score interval for ``successes`` out of ``n``; None when there is nothing to estimate."""
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_interval(
    both: int, only_a: int, only_b: int, n: int, z: float = Z_95
) -> tuple[float, float] | None:
    """Newcombe's interval for p_a - p_b, where on ``n`` shared examples ``both`` count for both sides, ``only_a``
    for a alone and ``only_b`` for b alone (the rest for neither)."""
    neither = n - both - only_a - only_b
    if min(both, only_a, only_b, neither) < 0:
        raise ValueError(f"paired counts {both}, {only_a}, {only_b} exceed {n} examples")
    if n == 0:
        return None
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, z)
    low_b, high_b = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    difference = p_a - p_b
    below = math.sqrt(max(0.0, (p_a - low_a) ** 2 - 2 * phi * (p_a - low_a) * (high_b - p_b) + (high_b - p_b) ** 2))
    above = math.sqrt(max(0.0, (high_a - p_a) ** 2 - 2 * phi * (high_a - p_a) * (p_b - low_b) + (p_b - low_b) ** 2))
    return max(-1.0, difference - below), min(1.0, difference + above)


def seed_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student's t interval for the mean of per-seed differences (mean ± t(n - 1) * sd / sqrt(n)); None for fewer
    than two seeds, where the spread over seeds is unknown."""
    n = len(differences)
    if n < 2:
        return None
    mean, half = statistics.fmean(differences), 0.0
    spread = statistics.stdev(differences)
    if spread > 0:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
    return mean - half, mean + half


def clopper_pearson_lower(successes: int, n: int, alpha: float = 0.05) -> float:
    """The one-sided Clopper-Pearson lower bound, at confidence 1 - ``alpha``, on a binomial proportion of which
    ``successes`` out of ``n`` were seen: the lower end of scipy's exact two-sided interval at 1 - 2 alpha."""
    if not 0 <= successes <= n or n == 0:
        raise ValueError(f"{successes} successes out of {n}")
    return float(stats.binomtest(successes, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low)


def vote_test_pvalue(top: int, runner_up: int) -> float:
    """The two-sided binomial test that the top class and the runner-up of a vote are equally likely, as RanMASK
    abstains from predicting unless it rejects at 0.05."""
    if top + runner_up == 0:
        return 1.0
    return float(stats.binomtest(top, top + runner_up, 0.5).pvalue)
