"""95% intervals: Wilson's for one accuracy, Newcombe's for the paired difference of two; known values and coverage."""

from __future__ import annotations

import random

import pytest

from rift.statistics import paired_difference_interval, seed_interval, wilson_interval


def test_wilson_known_values():
    # Newcombe (1998), single proportions: 81/263 -> [0.2553, 0.3662]; 15/148 -> [0.0624, 0.1605]
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)  # not [0, 0], as Wald's would be
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and low == pytest.approx(0.8389, abs=5e-5)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_paired_interval_uses_the_correlation_of_the_outcomes():
    # two models that agree on most examples: the paired interval is much narrower than one that treats the two
    # accuracies as independent samples (Newcombe's method for unpaired proportions, built from the same Wilson limits)
    both, only_a, only_b, n = 40, 8, 1, 100
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    (low_a, high_a), (low_b, high_b) = wilson_interval(both + only_a, n), wilson_interval(both + only_b, n)
    unpaired = (p_a - p_b - ((p_a - low_a) ** 2 + (high_b - p_b) ** 2) ** 0.5,
                p_a - p_b + ((high_a - p_a) ** 2 + (p_b - low_b) ** 2) ** 0.5)
    low, high = paired_difference_interval(both, only_a, only_b, n)
    assert low < 0.07 < high
    assert high - low < 0.6 * (unpaired[1] - unpaired[0])
    assert low > 0 > unpaired[0]  # the pairing shows what the unpaired view cannot: a is ahead


def test_paired_interval_is_antisymmetric_and_contains_the_difference():
    low, high = paired_difference_interval(50, 12, 3, 100)
    assert low < 0.09 < high and low > 0  # 9 more examples held by a than by b, of 100: clearly positive
    assert paired_difference_interval(50, 3, 12, 100) == pytest.approx((-high, -low))
    assert paired_difference_interval(40, 0, 0, 80) == pytest.approx((0.0, 0.0), abs=1e-6)  # identical outcomes
    with pytest.raises(ValueError):
        paired_difference_interval(50, 40, 20, 100)


@pytest.mark.parametrize("joint", [(0.15, 0.10, 0.05, 0.70), (0.08, 0.02, 0.02, 0.88), (0.30, 0.20, 0.05, 0.45)])
def test_both_intervals_cover_95_percent(joint):
    """Seeded simulation: 100 paired examples drawn from a known joint distribution of (held by both, by a only, by
    b only, by neither), as two models on one attacked sample."""
    rng = random.Random(0)
    n, trials = 100, 2000
    p_a, difference = joint[0] + joint[1], joint[1] - joint[2]
    covered_a = covered_difference = 0
    for _ in range(trials):
        counts = [0, 0, 0, 0]
        for kind in rng.choices(range(4), weights=joint, k=n):
            counts[kind] += 1
        both, only_a, only_b, _ = counts
        low, high = wilson_interval(both + only_a, n)
        covered_a += low <= p_a <= high
        low, high = paired_difference_interval(both, only_a, only_b, n)
        covered_difference += low <= difference <= high
    assert 0.93 <= covered_a / trials <= 0.97
    assert 0.93 <= covered_difference / trials <= 0.99  # a little conservative when few examples are discordant


def test_seed_interval_is_students_t_over_the_per_seed_differences():
    # rift - ascc under PWWS at the study preset, per seed (points): mean -0.933, sd 1.155, t(2) 4.303:
    # -0.933 ± 4.303 * 1.155 / sqrt(3) = [-3.80, +1.94]
    low, high = seed_interval([0.4, -1.6, -1.6])
    assert (round(low, 2), round(high, 2)) == (-3.80, 1.94)
    assert seed_interval([0.02, 0.02, 0.02]) == pytest.approx((0.02, 0.02))
    assert seed_interval([0.5]) is None  # one seed: the spread over seeds is unknown


def test_seed_interval_covers_the_true_difference_95_percent_of_the_time():
    """Two methods, 5 seeds each, robust accuracy measured on 500 paired examples per seed; the methods' true
    accuracies move from seed to seed (sd 1.2 points each) around a true difference of 2 points. The t interval over
    the per-seed differences must cover the true difference about 95% of the time."""
    rng = random.Random(0)
    covered, trials = 0, 2000
    for _ in range(trials):
        differences = []
        for _ in range(5):
            p_method, p_baseline = 0.46 + rng.gauss(0, 0.012), 0.44 + rng.gauss(0, 0.012)
            shared = [rng.random() for _ in range(500)]  # the same examples: outcomes correlate through difficulty
            held_method = sum(u < p_method for u in shared)
            held_baseline = sum(u < p_baseline for u in shared)
            differences.append((held_method - held_baseline) / 500)
        low, high = seed_interval(differences)
        covered += low <= 0.02 <= high
    assert 0.93 <= covered / trials <= 0.97
