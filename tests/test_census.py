"""The census (tests/census.py): at least 120 ways a new user may get rift wrong, each ending as it states, with 0
tracebacks, 0 silent wrong results and 0 lost data. Its table is printed whatever the outcome."""

from __future__ import annotations

import shutil
from pathlib import Path

from census import NAMES, Setting, all_cases, expected, run_case, table
from conftest import sentiment_examples
from test_bench import write_train_config

from rift.cli import main


def test_the_census_of_user_errors_ends_as_each_case_states(tmp_path, trained_tiny_dir, tiny_model_dir, capsys):
    s = Setting(root=tmp_path, model=Path(shutil.copytree(trained_tiny_dir, tmp_path / "model")),
                bare=Path(tiny_model_dir), run=Path(shutil.copytree(trained_tiny_dir, tmp_path / "run")),
                bench=tmp_path / "bench")
    s.files["train"] = s.csv("train.csv", [[e.text, NAMES[e.label]] for e in sentiment_examples(32, 0)])
    s.files["test"] = s.csv("test.csv", [[e.text, NAMES[e.label]] for e in sentiment_examples(24, 2)])
    (tmp_path / "bench-data").mkdir()
    s.files["train-config"] = write_train_config(tmp_path / "bench-data", 32)
    data = s.data()
    assert main(["bench", "--task", "file", "--model", tiny_model_dir, "--train-config", str(s.files["train-config"]),
                 "--methods", "standard", "--seeds", "0", "--attacks", "pwws", "--num-examples", "4", "--epochs", "1",
                 "--max-length", "32", "--num-threads", "1", "--output-dir", str(s.bench)]) == 0
    interrupted = tmp_path / "interrupted"  # a run whose last checkpoint is kept, as if killed before its metrics
    assert main(["train", "--model", tiny_model_dir, *data, "--epochs", "2", "--save-steps", "1", "--logging-steps",
                 "1", "--retention-examples", "0", "--keep-resume-state", "--output-dir", str(interrupted)]) == 0
    (interrupted / "metrics.json").unlink()
    s.files["interrupted"] = interrupted

    results = [run_case(case) for case in all_cases(s)]
    with capsys.disabled():
        print("\n" + table(results))
    assert len(results) >= 120
    assert not (tmp_path / "never").exists()  # every refused command stopped before it wrote anything
    assert [f"{r.case.kind} / {r.case.name}: {r.outcome} ({r.detail})" for r in results if not expected(r)] == []
