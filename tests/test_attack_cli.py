"""``rift attack`` end to end on a tiny fine-tuned model: results, saved examples, resume, bad input."""

from __future__ import annotations

import json

import pytest
from conftest import sentiment_examples
from test_cli import write_csv

from rift.cli import main


@pytest.fixture()
def data_files(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_examples(64, 0))
    test = write_csv(tmp_path / "test.csv", sentiment_examples(40, 2))
    return ["--task", "file", "--train-file", str(train), "--dev-file", str(train), "--test-file", str(test),
            "--text-column", "review", "--label-column", "sentiment", "--label-names", "neg,pos", "--max-length", "32"]


def test_ascc_attack_writes_results_and_every_example_and_resumes(tmp_path, trained_tiny_dir, data_files, capsys):
    out = tmp_path / "attack"
    command = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--split", "test",
               "--num-examples", "24", "--seed", "1", "--output-dir", str(out)]
    assert main(command) == 0
    results = json.loads((out / "results.json").read_text())
    summary = results["attacks"]["ascc"]
    assert summary["num_examples"] == 24
    assert 0 <= summary["robust_accuracy"] <= summary["clean_accuracy"] <= 1
    assert summary["attack_success_rate"] == pytest.approx(
        (summary["clean_accuracy"] - summary["robust_accuracy"]) / summary["clean_accuracy"])
    lines = (out / "examples_ascc.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 24 and len({r["index"] for r in records}) == 24
    assert {r["status"] for r in records} <= {"skipped", "failed", "succeeded"}
    assert "ascc" in capsys.readouterr().out  # the printed table

    # an interrupted run: only the first 10 examples were saved; the re-run attacks the rest and ends identical
    (out / "examples_ascc.jsonl").write_text("\n".join(lines[:10]) + "\n")
    assert main(command) == 0
    resumed = [json.loads(line) for line in (out / "examples_ascc.jsonl").read_text().splitlines()]
    assert len(resumed) == len(records)
    for a, b in zip(resumed, records):  # re-attacked in other batches: probabilities to float precision, times differ
        assert {k: v for k, v in a.items() if k != "seconds" and "probabilities" not in k} == {
            k: v for k, v in b.items() if k != "seconds" and "probabilities" not in k}
        for key in ("clean_probabilities", "adversarial_probabilities"):
            assert a[key] == pytest.approx(b[key], abs=1e-5)
    assert resumed[:10] == records[:10]  # the saved ones are kept as they were
    assert json.loads((out / "results.json").read_text())["attacks"]["ascc"]["robust_accuracy"] == pytest.approx(
        summary["robust_accuracy"])


def test_attack_bad_input_is_one_line(tmp_path, trained_tiny_dir, data_files, capsys):
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "nope", "--output-dir",
                 str(tmp_path / "o")]) == 2
    assert "unknown attack nope" in capsys.readouterr().err
    assert main(["attack", "--model", trained_tiny_dir, "--task", "snli", "--attack", "ascc", "--output-dir",
                 str(tmp_path / "o")]) == 2
    assert "3" in capsys.readouterr().err  # the label counts differ
    missing = tmp_path / "nowhere"
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--data-dir", str(missing),
                 "--output-dir", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_attack_refuses_to_mix_settings_in_one_folder(tmp_path, trained_tiny_dir, data_files, capsys):
    out = tmp_path / "attack"
    base = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--num-examples", "4",
            "--ascc-steps", "2", "--output-dir", str(out)]
    assert main(base) == 0
    assert main([*base, "--seed", "5"]) == 2
    assert "seed" in capsys.readouterr().err


def test_a_moved_attack_folder_resumes(tmp_path, trained_tiny_dir, data_files):
    base = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--ascc-steps", "1", "--seed", "3"]
    assert main([*base, "--num-examples", "6", "--output-dir", str(tmp_path / "first")]) == 0
    saved = (tmp_path / "first" / "examples_ascc.jsonl").read_text().splitlines()
    (tmp_path / "first").rename(tmp_path / "moved")
    assert main([*base, "--num-examples", "6", "--output-dir", str(tmp_path / "moved")]) == 0
    assert (tmp_path / "moved" / "examples_ascc.jsonl").read_text().splitlines() == saved  # nothing attacked again


def test_sample_seed_fixes_the_attacked_examples_across_model_seeds(tmp_path, trained_tiny_dir, data_files):
    chosen = []
    for seed in (1, 2):
        out = tmp_path / f"s{seed}"
        assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--ascc-steps", "1",
                     "--num-examples", "6", "--seed", str(seed), "--sample-seed", "7", "--output-dir", str(out)]) == 0
        chosen.append([json.loads(line)["index"] for line in (out / "examples_ascc.jsonl").read_text().splitlines()])
    assert chosen[0] == chosen[1] and len(chosen[0]) == 6
