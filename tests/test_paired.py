"""Paired comparison of two methods on hand-made result files whose discordant counts are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rift.attacks.results import AttackResult, held_by_all
from rift.evaluation.paired import compare_methods, exact_mcnemar
from rift.evaluation.robustness import read_results


def write_outcomes(path: Path, statuses: dict[int, str]) -> None:
    """One attack's per-example results with the given statuses (failed = still classified correctly)."""
    rows = []
    for index, status in statuses.items():
        adversarial = [0.2, 0.8] if status == "succeeded" else [0.7, 0.3]
        rows.append(AttackResult(index, 0, status, f"text {index}", None, f"text {index}", None, 0, [0.9, 0.1],
                                 int(status == "succeeded"), adversarial, [], 2, 5, 0.1).to_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def statuses(held: set[int], broken: set[int], skipped: set[int] = frozenset()) -> dict[int, str]:
    table = {i: "failed" for i in held} | {i: "succeeded" for i in broken} | {i: "skipped" for i in skipped}
    return dict(sorted(table.items()))


def test_mcnemar_counts_and_p_value_of_hand_made_result_files(tmp_path):
    outcomes = {
        # seed 0, 10 examples: only the method holds 2, 3, 4, 5; only the baseline 6, 7, 9; both 0, 1; neither 8
        ("method", 0): statuses(held={0, 1, 2, 3, 4, 5}, broken={6, 7, 9}, skipped={8}),
        ("baseline", 0): statuses(held={0, 1, 6, 7, 9}, broken={2, 3, 4, 5}, skipped={8}),
        # seed 1: the method's attack stopped after 5 examples; of those only the method holds 0-3, only the
        # baseline 4; examples 5-9 count for neither side
        ("method", 1): statuses(held={0, 1, 2, 3}, broken={4}),
        ("baseline", 1): statuses(held={4, 5, 6}, broken={0, 1, 2, 3, 7, 8, 9}),
    }
    records = []
    accuracy = {("method", 0): 0.8, ("method", 1): 0.9, ("baseline", 0): 0.7, ("baseline", 1): 0.6}
    for (method, seed), table in outcomes.items():
        directory = tmp_path / f"{method}-s{seed}"
        write_outcomes(directory / "examples_pwws.jsonl", table)
        robust = sum(status == "failed" for status in table.values()) / len(table)
        records.append(dict(task="t", method=method, seed=seed, directory=str(directory),
                            test_accuracy=accuracy[method, seed], **{"pwws/robust_accuracy": robust}))

    [comparison] = compare_methods(records, ["baseline", "method"], ["pwws"],
                                   lambda record, attack: held_by_all(
                                       {attack: read_results(Path(record["directory"]) / f"examples_{attack}.jsonl")}))
    assert (comparison["method"], comparison["baseline"], comparison["seeds"]) == ("method", "baseline", [0, 1])
    held = comparison["held_only"]["pwws"]
    assert (held["method"], held["baseline"], held["examples"]) == (8, 4, 15)
    # two-sided exact binomial test of 4 of 12 discordant examples: 2 * sum_{k<=4} C(12, k) / 2^12
    assert held["p_value"] == pytest.approx(2 * (1 + 12 + 66 + 220 + 495) / 4096)
    test = comparison["differences"]["test_accuracy"]
    assert test["values"] == pytest.approx([0.1, 0.3]) and test["mean"] == pytest.approx(0.2)
    assert test["std"] == pytest.approx(math.sqrt(0.02))
    assert comparison["differences"]["pwws/robust_accuracy"]["values"] == pytest.approx([0.6 - 0.5, 0.8 - 0.3])


def test_exact_mcnemar_known_answers():
    assert exact_mcnemar(0, 0) == 1.0
    assert exact_mcnemar(3, 3) == 1.0
    assert exact_mcnemar(0, 5) == pytest.approx(2 / 32)
    assert exact_mcnemar(9, 1) == exact_mcnemar(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert exact_mcnemar(8, 4) == pytest.approx(1588 / 4096)
