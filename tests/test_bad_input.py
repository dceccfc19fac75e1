"""Every bad input is one line on stderr and exit code 2, before any work starts, and nothing a previous run wrote
is touched; valid input next to it succeeds."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_examples
from test_cli import write_csv

from rift.cli import main

NAMES = ("negative", "positive")


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stopped:  # argparse's own checks (choices, types)
        code = stopped.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture()
def setting(tmp_path, trained_tiny_dir):
    test = write_csv(tmp_path / "test.csv", sentiment_examples(24, 2), NAMES)
    train = write_csv(tmp_path / "train.csv", sentiment_examples(32, 0), NAMES)
    previous = tmp_path / "previous"  # a finished run: its folder must come out of every bad command untouched
    shutil.copytree(trained_tiny_dir, previous)
    (tmp_path / "a-file").write_text("not a folder")
    data = ["--task", "file", "--test-file", str(test), "--text-column", "review", "--label-column", "sentiment",
            "--label-names", ",".join(NAMES), "--max-length", "32"]
    return dict(tmp=tmp_path, previous=previous, data=data, train=str(train))


def bad_cases(s) -> list[tuple[list[str], str]]:
    tmp, previous, data = s["tmp"], str(s["previous"]), s["data"]
    train = ["train", "--model", previous, *data, "--train-file", s["train"]]
    attack = ["attack", "--model", previous, *data]
    config = tmp / "fractional.yaml"
    config.write_text(yaml.safe_dump({"epochs": 1.5}))
    not_a_bench = tmp / "attack-results"
    not_a_bench.mkdir()
    (not_a_bench / "results.json").write_text(json.dumps({"attacks": {}}))
    return [
        ([*train, "--batch-size", "0", "--output-dir", previous], "--batch-size must be >= 1, got 0"),
        ([*train, "--batch-size", "-4", "--output-dir", previous], "--batch-size must be >= 1, got -4"),
        ([*train, "--learning-rate=-1e-4", "--output-dir", previous], "--learning-rate must be > 0"),
        ([*train, "--epochs", "0", "--output-dir", previous], "--epochs must be >= 1, got 0"),
        ([*train, "--seed", "-1", "--output-dir", previous], "--seed must be >= 0 and <= 4294967295, got -1"),
        ([*train, "--seed", str(2**32), "--output-dir", previous],
         "--seed must be >= 0 and <= 4294967295, got 4294967296"),
        (["bench", "--seeds", "0,-2", "--output-dir", str(tmp / "b")], "--seeds must be >= 0 and <= 4294967295"),
        ([*train, "--epochs", "1.5", "--output-dir", previous], "argument --epochs: invalid int value: '1.5'"),
        ([*train, "--config", str(config), "--output-dir", previous], "epochs: cannot use 1.5 (expected a whole number)"),
        ([*train, "--warmup-ratio", "1.5", "--output-dir", previous], "--warmup-ratio must be >= 0 and <= 1, got 1.5"),
        ([*train, "--method", "robust", "--output-dir", previous], "argument --method/--methods: invalid choice"),
        ([*train, "--preset", "gpu", "--output-dir", previous], "argument --preset: invalid choice"),
        ([*train, "--output-dir", str(tmp / "a-file" / "run")], "a-file is a file, so the path cannot be created"),
        ([*train, "--output-dir", str(tmp / "a-file")], "exists and is not a folder"),
        ([*train, "--output-dir", ""], "--output-dir: the path is empty"),
        ([*train, "--output-dir", previous], "already holds a rift run; pass --resume"),
        ([*train, "--alpha", "0.3", "--output-dir", str(tmp / "o")],
         "--alpha is not read by --method standard; it is an option of --method rift, rift-uncond, rift-clean"),
        ([*train, "--method", "ascc", "--adversary", "random", "--ascc-steps", "3", "--output-dir", str(tmp / "o")],
         "--ascc-steps is not read by --adversary random; it is an option of --adversary ascc, word-ascc"),
        ([*train, "--adversary", "discrete", "--output-dir", str(tmp / "o")],
         "--adversary is not read by --task file, --method standard"),
        (["train", "--model", previous, "--task", "sst2", "--test-file", s["train"], "--output-dir", str(tmp / "o")],
         "--test-file is not read by --task sst2; it is an option of --task file"),
        ([*attack, "--attack", "pwws", "--population", "8", "--output-dir", str(tmp / "o")],
         "--population is not read by --attack pwws; it is an option of --attack genetic"),
        ([*attack, "--num-examples", "-3", "--output-dir", str(tmp / "o")], "--num-examples must be >= 1, got -3"),
        ([*attack, "--num-examples", "0", "--output-dir", str(tmp / "o")], "--num-examples must be >= 1, got 0"),
        ([*attack, "--max-changed-share", "1.2", "--output-dir", str(tmp / "o")], "--max-changed-share must be > 0"),
        ([*attack, "--attacks", "fgsm", "--output-dir", str(tmp / "o")], "--attack: 'fgsm' is not one of"),
        ([*attack, "--output-dir", str(tmp / "a-file" / "o")], "a-file is a file"),
        (["eval", "--model", previous, *data, "--output", str(tmp)], "is a folder, not a file"),
        (["bench", "--methods", "rift+nope", "--output-dir", str(tmp / "b")], "unknown adversary 'nope'"),
        (["bench", "--num-examples", "-1", "--output-dir", str(tmp / "b")], "--num-examples must be >= 1"),
        (["bench", "--seeds", "0,1,0", "--output-dir", str(tmp / "b")], "--seeds: 0 given more than once"),
        (["bench", "--methods", "standard,rift,standard", "--output-dir", str(tmp / "b")],
         "--methods: standard given more than once"),
        (["bench", "--task", "sst2,sst2", "--output-dir", str(tmp / "b")], "--task: sst2 given more than once"),
        (["report", str(not_a_bench)], "is not a rift bench folder"),
        (["report", str(tmp / "a-file")], "is not a folder; give the output folder of rift bench"),
    ]


def test_every_bad_input_is_one_line_and_exit_code_2(setting, capsys):
    before = snapshot(setting["previous"])
    for argv, message in bad_cases(setting):
        code, errors = run(argv, capsys)
        assert code == 2, (argv, errors)
        assert len(errors) == 1 and message in errors[0], (argv, errors)
        assert "Traceback" not in errors[0]
    assert snapshot(setting["previous"]) == before
    assert not (setting["tmp"] / "o").exists() and not (setting["tmp"] / "b").exists()  # refused before any work


def test_the_valid_neighbours_succeed(setting, capsys):
    tmp, previous, data = setting["tmp"], str(setting["previous"]), setting["data"]
    before = snapshot(setting["previous"])
    # eval with only the file it scores; the result goes beside the model folder, which stays untouched
    code, errors = run(["eval", "--model", previous, *data], capsys)
    assert code == 0, errors
    assert json.loads((tmp / "previous.eval-file-test.json").read_text())["num_examples"] == 24
    assert snapshot(setting["previous"]) == before
    # both spellings of the attack list
    for flag, out in (("--attack", "o1"), ("--attacks", "o2")):
        code, errors = run(["attack", "--model", previous, *data, flag, "pwws", "--num-examples", "4",
                            "--output-dir", str(tmp / out)], capsys)
        assert code == 0, errors
        assert list(json.loads((tmp / out / "results.json").read_text())["attacks"]) == ["pwws"]
