"""The command line: help, one-line errors, configuration precedence, and train -> eval end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_examples

from rift.arguments import TrainingArguments
from rift.cli import main
from rift.config import build_config

RIFT = str(Path(sys.executable).parent / "rift")


def write_csv(path: Path, examples, names=("neg", "pos")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["review", "sentiment"])
        for example in examples:
            writer.writerow([example.text, names[example.label]])
    return path


def test_help_lists_commands_and_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--task", "--method", "--model", "--epochs", "--max-train-examples", "--output-dir", "--seed",
                 "--learning-rate", "--batch-size", "--max-length", "--max-dev-examples", "--max-test-examples",
                 "--config", "--resume"):
        assert flag in out
    assert main([]) == 2  # no command: the list of commands
    listed = capsys.readouterr().out
    assert all(command in listed for command in ("train", "attack", "bench", "record"))


def test_wrong_flag_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochz", "1"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--epochz" in lines[0]


def test_bad_input_is_a_one_line_error_without_traceback(tmp_path, capsys):
    code = main(["train", "--task", "file", "--train-file", str(tmp_path / "nope.csv"), "--output-dir", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("rift: error:")
    assert "nope.csv" in err and "Traceback" not in err


def test_missing_output_dir_is_reported(capsys):
    assert main(["train", "--task", "sst2"]) == 2
    assert "--output-dir" in capsys.readouterr().err


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"learning-rate": 1e-3, "epochs": 7, "output_dir": "x"}))
    args = build_config(TrainingArguments, {"config": str(config), "epochs": 2})
    assert (args.learning_rate, args.epochs, args.output_dir, args.batch_size) == (1e-3, 2, "x", 16)
    presets = {"cpu": {"epochs": 9, "batch_size": 8}}
    args = build_config(TrainingArguments, {"preset": "cpu", "output_dir": "x", "batch_size": 4}, presets)
    assert (args.epochs, args.batch_size) == (9, 4)


def test_unknown_yaml_key_is_an_error(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rat: 0.1\n")
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "o")]) == 2
    assert "learning_rat" in capsys.readouterr().err


def test_train_then_eval_on_user_files(tmp_path, tiny_model_dir, capsys):
    train = write_csv(tmp_path / "train.csv", sentiment_examples(64, 0))
    dev = write_csv(tmp_path / "dev.csv", sentiment_examples(32, 1))
    test = write_csv(tmp_path / "test.csv", sentiment_examples(32, 2))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "task": "file", "train_file": str(train), "dev_file": str(dev), "test_file": str(test),
        "text_column": "review", "label_column": "sentiment", "label_names": ["neg", "pos"],
        "model": tiny_model_dir, "epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "max_length": 32,
    }))
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--output-dir", str(out), "--seed", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"dev_accuracy", "test_accuracy"} <= metrics.keys()
    saved = yaml.safe_load((out / "rift_config.yaml").read_text())
    assert saved["seed"] == 1 and saved["learning_rate"] == 3e-3 and saved["label_names"] == ["neg", "pos"]
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["id2label"] == {"0": "neg", "1": "pos"}
    capsys.readouterr()
    model_files = sorted(path.name for path in out.iterdir())

    assert main(["eval", "--model", str(out), "--task", "file", "--train-file", str(train), "--test-file", str(test),
                 "--dev-file", str(dev), "--text-column", "review", "--label-column", "sentiment",
                 "--label-names", "neg,pos", "--split", "test", "--max-length", "32"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = json.loads((tmp_path / "out.eval-file-test.json").read_text())  # beside the run, not inside it
    assert printed == written
    assert sorted(path.name for path in out.iterdir()) == model_files
    assert written["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert written["num_examples"] == 32


def test_eval_rejects_a_model_with_the_wrong_label_count(tmp_path, tiny_model_dir, capsys):
    from rift.models import load_classifier

    three = tmp_path / "three"
    load_classifier(tiny_model_dir, ["a", "b", "c"]).save_pretrained(three)
    from rift.models import load_tokenizer

    load_tokenizer(tiny_model_dir).save_pretrained(three)
    assert main(["eval", "--model", str(three), "--task", "sst2", "--split", "dev"]) == 2
    assert "3 labels" in capsys.readouterr().err


def test_a_model_without_a_trained_head_is_not_scored_unless_asked(tmp_path, tiny_model_dir, capsys):
    from test_distributed import data_options

    data = data_options(tmp_path)
    message = (f"rift: error: model '{tiny_model_dir}' has no trained classification head (classifier.bias, "
               "classifier.weight not in its weights): its predictions would come from a randomly initialised head; "
               "fine-tune it first (rift train), or pass --allow-untrained-head")
    for command in (["eval", "--output", str(tmp_path / "eval.json")],
                    ["attack", "--num-examples", "4", "--output-dir", str(tmp_path / "attacked")]):
        capsys.readouterr()
        assert main([command[0], "--model", tiny_model_dir, *data, *command[1:]]) == 2
        assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "attacked").exists()
    assert main(["eval", "--model", tiny_model_dir, *data, "--output", str(tmp_path / "eval.json"),
                 "--allow-untrained-head"]) == 0
    scored = json.loads((tmp_path / "eval.json").read_text())
    assert scored["untrained_head"] == ["classifier.bias", "classifier.weight"]


@pytest.mark.slow
def test_minilm_smoke_run_through_the_console_script(tmp_path):
    """The default model on real SST-2, a few steps, through the installed ``rift`` command."""
    out = tmp_path / "minilm"
    result = subprocess.run(
        [RIFT, "train", "--task", "sst2", "--model", "minilm", "--epochs", "1", "--max-train-examples", "64",
         "--max-dev-examples", "64", "--max-test-examples", "64", "--batch-size", "16", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-2])
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    from transformers import pipeline

    predictions = pipeline("text-classification", model=str(out), device=-1)(["a gorgeous, moving film", "dull"])
    assert {p["label"] for p in predictions} <= {"negative", "positive"}


def test_bf16_on_a_cpu_without_amx_warns(monkeypatch):
    import rift.accelerator as accelerator

    monkeypatch.setattr(accelerator, "has_accelerator", lambda: False)
    monkeypatch.setattr(accelerator, "cpu_has_fast_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no AMX"):
        assert accelerator.pick_mixed_precision("bf16") == "bf16"
    monkeypatch.setattr(accelerator, "cpu_has_fast_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert accelerator.pick_mixed_precision("bf16") == "bf16"
        assert accelerator.pick_mixed_precision("no") == "no"
