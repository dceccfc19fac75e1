"""The certificates of SAFER and RanMASK, checked against exhaustive enumeration on hand-built classifiers.

The smoothed distributions are computed exactly (every copy enumerated), so each certificate is checked with the
true probability in place of its Monte-Carlo bound: whatever the certificate says is safe must be safe.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from scipy import stats

from rift.evaluation.certification import ranmask_distance, ranmask_radius, safer_certified
from rift.smoothing import kept_words
from rift.statistics import clopper_pearson_lower, vote_test_pvalue
from rift.substitutions import SubstitutionSource
from rift.substitutions.perturbation_sets import PerturbationSets

MASK = "[MASK]"


class TableSource(SubstitutionSource):
    name = "table"

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return list(self.table.get(words[position].lower(), []))


@pytest.mark.parametrize("successes, n", [(1, 10), (3, 10), (9, 10), (95, 100), (4990, 5000), (2500, 5000)])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_the_clopper_pearson_bound_is_the_beta_quantile(successes, n, alpha):
    assert clopper_pearson_lower(successes, n, alpha) == pytest.approx(
        stats.beta.ppf(alpha, successes, n - successes + 1), rel=1e-9)


def test_the_clopper_pearson_bound_has_known_values():
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0
    assert clopper_pearson_lower(10, 10, 0.05) == pytest.approx(0.05 ** (1 / 10))  # solves p^10 = alpha
    assert clopper_pearson_lower(5000, 5000, 0.05) == pytest.approx(0.05 ** (1 / 5000))
    with pytest.raises(ValueError):
        clopper_pearson_lower(11, 10, 0.05)


def test_the_vote_test_is_two_sided_binomial():
    def by_hand(top, runner_up):
        n = top + runner_up
        tail = sum(math.comb(n, i) for i in range(max(top, runner_up), n + 1)) / 2 ** n
        return min(1.0, 2 * tail)
    for top, runner_up in [(60, 40), (61, 39), (50, 50), (100, 0), (7, 3)]:
        assert vote_test_pvalue(top, runner_up) == pytest.approx(by_hand(top, runner_up), rel=1e-9)
    assert vote_test_pvalue(60, 40) > 0.05 > vote_test_pvalue(61, 39)  # RanMASK abstains at 60 : 40 of 100


# SAFER ------------------------------------------------------------------------------------------------------------

SYNONYMS = {  # a chain of four words (cut by sets of three) and a closed triangle, as a substitution table
    "good": ["great", "fine"], "great": ["good"], "fine": ["good", "okay"], "okay": ["fine"],
    "bad": ["poor"], "poor": ["bad", "awful"], "awful": ["poor"],
    "film": ["movie"], "movie": ["film"],
    "fun": ["joy"],  # one way only: sets of two sizes, {fun, joy} and {joy}
}
SENTIMENT = {"good": 2, "great": 3, "fine": 1, "okay": -1, "bad": -2, "poor": -1, "awful": -3, "movie": 1, "fun": 2}


def sentiment(words: Sequence[str]) -> int:
    return int(sum(SENTIMENT.get(word, 0) for word in words) > 0)


def safer_distribution(sets: PerturbationSets, words: Sequence[str]) -> Counter:
    """The exact share of each class over SAFER's copies of ``words``."""
    shares: Counter = Counter()
    choices = [sets.members(word) for word in words]
    total = math.prod(len(c) for c in choices)
    for copy in itertools.product(*choices):
        shares[sentiment(copy)] += 1 / total
    return shares


def test_perturbation_sets_share_a_small_part_and_cut_a_large_one_nearest_first():
    sets = PerturbationSets(TableSource(SYNONYMS), size=3)
    assert sets.members("Good") == ("good", "great", "fine")
    assert sets.members("okay") == ("okay", "fine", "good")
    assert set(sets.members("bad")) == set(sets.members("poor")) == set(sets.members("awful"))
    assert sets.overlap("bad", "awful") == 1.0  # within a shared set an attacker changes nothing the copies see
    assert sets.overlap("fine", "okay") == 1.0  # both sets hold fine, good and okay
    assert sets.overlap("fine", "good") == pytest.approx(2 / 3)
    assert sets.members("the") == ("the",)
    assert sets.overlap("fun", "joy") == 0.5  # uniform draws from {fun, joy} and from {joy} differ by one half
    assert sets.position_overlap(["the", "fine", "film"], 1) == pytest.approx(2 / 3)  # good: the worse of good and okay
    assert sets.position_overlap(["the", "fine", "film"], 0) == 1.0


def test_every_text_safer_certifies_keeps_its_prediction_under_every_substitution():
    sets = PerturbationSets(TableSource(SYNONYMS), size=3)
    source = sets.source
    vocabulary = ["good", "fine", "okay", "bad", "awful", "film", "fun", "the"]
    certified = certified_with_cut_sets = 0
    for words in itertools.product(vocabulary, repeat=3):
        shares = safer_distribution(sets, words)
        predicted, p = shares.most_common(1)[0]
        overlaps = [sets.position_overlap(words, j) for j in range(len(words))]
        if not safer_certified(p, overlaps):
            continue
        certified += 1
        certified_with_cut_sets += math.prod(overlaps) < 1
        options = [[word, *source.substitutes(words, j)] for j, word in enumerate(words)]
        for changed in itertools.product(*options):  # every substitution of any number of words
            moved = safer_distribution(sets, changed)[predicted]
            assert moved >= p - (1 - math.prod(overlaps)) - 1e-12, (words, changed)  # the distance bound itself
            assert moved > 0.5, (words, changed)
    assert certified > 20 and certified_with_cut_sets > 5  # the check covers certificates that lean on the bound


def test_safer_certifies_nothing_the_bound_cannot_cover():
    assert not safer_certified(0.5, [])
    assert safer_certified(0.51, [])
    assert not safer_certified(0.75, [0.75])  # 0.75 - (1 - 0.75) = 0.5 is not above one half
    assert safer_certified(0.76, [0.75])


# RanMASK ----------------------------------------------------------------------------------------------------------

def test_ranmask_keeps_what_its_reference_keeps():
    assert kept_words(10, 0.9) == 2  # round(9) masked leaves 1: at least 2 are kept
    assert kept_words(30, 0.9) == 3
    assert kept_words(20, 0.7) == 6
    assert kept_words(5, 0.7) == 2  # round(3.5) = 4 masked
    assert kept_words(1, 0.9) == 1


def test_the_ranmask_distance_counts_kept_changed_words():
    assert ranmask_distance(10, 2, 0) == 0.0
    assert ranmask_distance(10, 2, 1) == pytest.approx(1 - 36 / 45)
    assert ranmask_distance(10, 2, 9) == 1.0
    assert ranmask_radius(1.0, 10, 2) == 2  # 1 - 0.378 > 0.5 at 2 words, 1 - 0.533 is not at 3
    assert ranmask_radius(0.8, 10, 2) == 1
    assert ranmask_radius(0.5, 10, 2) is None


def masked_vote(words: Sequence[str]) -> int:
    """Positive when a kept 'good' outnumbers the kept 'bad's; masked words say nothing."""
    kept = Counter(word for word in words if word != MASK)
    return int(kept["good"] > kept["bad"])


def ranmask_share(words: Sequence[str], kept: int, label: int) -> float:
    subsets = list(itertools.combinations(range(len(words)), kept))
    return sum(masked_vote([w if i in subset else MASK for i, w in enumerate(words)]) == label
               for subset in subsets) / len(subsets)


@pytest.mark.parametrize("num_words, mask_rate", [(6, 0.7), (10, 0.8)])
def test_every_text_ranmask_certifies_keeps_its_prediction_under_every_change_within_its_radius(num_words, mask_rate):
    kept = kept_words(num_words, mask_rate)
    vocabulary = ["good", "bad", "film", "the"]
    rng = random.Random(0)
    texts = [["good"] * num_words, ["good", "film"] * (num_words // 2), ["bad", *["the"] * (num_words - 1)]]
    texts += [[rng.choice(vocabulary) for _ in range(num_words)] for _ in range(150)]
    radii = Counter()
    for words in texts:
        shares = {label: ranmask_share(words, kept, label) for label in (0, 1)}
        predicted = max(shares, key=shares.get)
        radius = ranmask_radius(shares[predicted], num_words, kept)
        radii[radius] += 1
        for changed in range(1, (radius or 0) + 1):
            for positions in itertools.combinations(range(num_words), changed):
                for replacements in itertools.product(vocabulary, repeat=changed):
                    moved = list(words)
                    for position, word in zip(positions, replacements):
                        moved[position] = word
                    share = ranmask_share(moved, kept, predicted)
                    assert share >= shares[predicted] - ranmask_distance(num_words, kept, changed) - 1e-12
                    assert share > 0.5, (words, moved)
    assert radii[0] > 10 and sum(count for radius, count in radii.items() if radius and radius >= 1) > 10

