"""The record every attack returns for every example, and the summary metrics over many records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rift.arguments import attack_entry
from rift.registry import load, names
from rift.statistics import wilson_interval

STATUSES = ("skipped", "failed", "succeeded")  # skipped: the clean prediction was already wrong
# the name under which tables, grids and model cards report the worst case over the word-substitution attacks
WORST_CASE = "worst-case"


@dataclass(frozen=True)
class WordChange:
    position: int  # word index (rift.text.words.split_words) in the attacked text: the hypothesis of a pair
    old: str
    new: str
    # whether the attacked model's training adversary could have made this change (None: not known, or the model
    # was not trained against an adversary); see rift.evaluation.surface
    in_training_surface: bool | None = None


@dataclass
class AttackResult:
    """One attacked example. For a pair only ``text_pair`` (the hypothesis) is attacked; ``adversarial_text`` then
    equals ``text``. A failed attack reports the most adversarial candidate it ended on; a skipped one the input."""

    index: int
    label: int
    status: str
    text: str
    text_pair: str | None
    adversarial_text: str
    adversarial_text_pair: str | None
    clean_prediction: int
    clean_probabilities: list[float]
    adversarial_prediction: int
    adversarial_probabilities: list[float]
    changes: list[WordChange]
    num_words: int  # words of the attacked text, punctuation marks not counted
    queries: int  # distinct inputs this example asked the model for, the clean prediction included
    seconds: float  # this example's share of the wall time (model time is split by queries)

    @property
    def perturbed_fraction(self) -> float:
        return len(self.changes) / self.num_words if self.num_words else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> AttackResult:
        """The inverse of ``to_dict``, for callers that resume from saved records."""
        return cls(**{**record, "changes": [WordChange(**change) for change in record["changes"]]})


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def summarize(results: Sequence[AttackResult]) -> dict[str, Any]:
    """The metrics of the attack literature (as TextAttack reports them). Robust = classified correctly and not broken. ``mean_perturbed_fraction`` is over
    succeeded attacks, ``mean_queries`` over attacked (not skipped) examples, as TextAttack reports them. Every
    accuracy and the success rate come with their counts and a 95% Wilson interval ``[low, high]``. A metric with
    nothing to average is None."""
    n = len(results)
    correct = [r for r in results if r.status != "skipped"]
    robust = sum(r.status == "failed" for r in correct)
    broken = len(correct) - robust
    interval = lambda k, total: list(wilson_interval(k, total)) if total else None  # noqa: E731
    return {
        "num_examples": n,
        "num_correct": len(correct),
        "num_robust": robust,
        "clean_accuracy": len(correct) / n if n else None,
        "clean_accuracy_interval": interval(len(correct), n),
        "robust_accuracy": robust / n if n else None,
        "robust_accuracy_interval": interval(robust, n),
        "attack_success_rate": broken / len(correct) if correct else None,
        "attack_success_rate_interval": interval(broken, len(correct)),
        "mean_perturbed_fraction": _mean(r.perturbed_fraction for r in results if r.status == "succeeded"),
        "mean_queries": _mean(r.queries for r in correct),
        "seconds_per_example": _mean(r.seconds for r in results),
        "outside_training_surface": outside_training_surface(results),
    }


def outside_training_surface(results: Sequence[AttackResult]) -> dict[str, Any] | None:
    """Over the succeeded attacks whose changes are marked: how many changes the model's training adversary could
    not have made, and how many attacks made at least one such change (None when nothing is marked)."""
    marked = [r for r in results if r.status == "succeeded" and r.changes
              and all(c.in_training_surface is not None for c in r.changes)]
    if not marked:
        return None
    changes = [c for r in marked for c in r.changes]
    outside = sum(not c.in_training_surface for c in changes)
    attacks = sum(any(not c.in_training_surface for c in r.changes) for r in marked)
    return {"succeeded": len(marked), "with_change_outside": attacks, "share_with_change_outside": attacks / len(marked),
            "changes": len(changes), "changes_outside": outside, "share_changes_outside": outside / len(changes)}


def measures_training_adversary(entry: str) -> bool:
    """Whether the attack of ``entry`` (a name, or a bench's ATTACK@PROTOCOL) works in the training adversary's own
    space (ASCC) rather than on words; False for a name that is not registered (a record made with an attack of
    one's own)."""
    name, _ = attack_entry(entry)
    return name in names("attack") and load("attack", name).measures_training_adversary


def text_attacks(attacks: Iterable[str]) -> list[str]:
    """The attacks of ``attacks`` that change words: those a worst case is taken over."""
    return [name for name in attacks if not measures_training_adversary(name)]


def with_worst_case(attacks: Sequence[str]) -> list[str]:
    """The robustness columns of a set of attacks: the worst case first when two or more of them change words,
    then each attack."""
    return ([WORST_CASE] if len(text_attacks(attacks)) > 1 else []) + list(attacks)


def worst_case(results_by_attack: dict[str, dict[int, AttackResult]]) -> dict[str, Any] | None:
    """Accuracy under the worst case of several attacks, over the examples every one of them attacked: an example
    is robust only if it was classified correctly and no attack broke it. None for fewer than two attacks or no
    example in common. The robust accuracy of any single attack on the same examples is at least this."""
    if len(results_by_attack) < 2:
        return None
    common = sorted(set.intersection(*(set(results) for results in results_by_attack.values())))
    if not common:
        return None
    held = held_by_all(results_by_attack)
    robust, n = sum(held.values()), len(common)
    # the clean prediction is the same model's on the same input for every attack: any attack's record says it
    correct = sum(next(iter(results_by_attack.values()))[i].status != "skipped" for i in common)
    return {"attacks": list(results_by_attack), "num_examples": n, "num_correct": correct,
            "clean_accuracy": correct / n, "clean_accuracy_interval": list(wilson_interval(correct, n)),
            "num_robust": robust, "robust_accuracy": robust / n,
            "robust_accuracy_interval": list(wilson_interval(robust, n))}


def held_by_all(results_by_attack: dict[str, dict[int, AttackResult]]) -> dict[int, bool]:
    """Per example that every attack attacked: whether it is classified correctly and no attack broke it."""
    common = set.intersection(*(set(results) for results in results_by_attack.values()))
    return {i: all(results[i].status == "failed" for results in results_by_attack.values()) for i in sorted(common)}
