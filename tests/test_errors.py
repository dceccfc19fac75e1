"""Bad input ends in one line naming the problem (exit code 2), never a traceback or a meaningless run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import sentiment_examples
from test_cli import write_csv

from rift.cli import main
from rift.data import TaskData
from rift.errors import RiftError


@pytest.fixture
def data(tmp_path) -> list[str]:
    train = write_csv(tmp_path / "train.csv", sentiment_examples(32, 0))
    return ["--task", "file", "--train-file", str(train), "--text-column", "review", "--label-column", "sentiment",
            "--max-length", "32", "--epochs", "1"]


def fails_with(argv: list[str], message: str, capsys) -> None:
    """``rift ARGV`` exits with 2 and one error line that contains ``message``."""
    capsys.readouterr()
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rift: error:")]
    assert len(errors) == 1 and message in errors[0], errors


def model_copy(tiny_model_dir: str, destination: Path, drop: tuple[str, ...]) -> Path:
    shutil.copytree(tiny_model_dir, destination)
    for name in drop:
        (destination / name).unlink()
    return destination


def test_a_classifier_head_of_another_size(tmp_path, tiny_model_dir, data, capsys):
    from rift.models import load_classifier, load_tokenizer

    three = tmp_path / "three"
    load_classifier(tiny_model_dir, ["a", "b", "c"]).save_pretrained(three)
    load_tokenizer(tiny_model_dir).save_pretrained(three)
    fails_with(["train", "--model", str(three), *data, "--output-dir", str(tmp_path / "out")],
               "has a classification head with 3 labels, the task has 2", capsys)


def test_a_model_folder_without_config(tmp_path, tiny_model_dir, data, capsys):
    folder = model_copy(tiny_model_dir, tmp_path / "model", ("config.json",))
    fails_with(["train", "--model", str(folder), *data, "--output-dir", str(tmp_path / "out")],
               f"{folder} is not a Hugging Face model folder (no config.json)", capsys)


def damaged(folder: Path, damage: str) -> None:
    weights = folder / "model.safetensors"
    if damage == "empty weights":
        weights.write_bytes(b"")
    elif damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "config that is not JSON":
        (folder / "config.json").write_text("{not json")
    elif damage == "head of another size than config.json says":
        config = json.loads((folder / "config.json").read_text())
        config |= {"id2label": {"0": "a", "1": "b", "2": "c"}, "label2id": {"a": 0, "b": 1, "c": 2}}
        (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage", ["empty weights", "truncated weights", "config that is not JSON",
                                    "head of another size than config.json says"])
def test_a_damaged_model_folder_is_one_line_naming_it(tmp_path, trained_tiny_dir, data, capsys, damage):
    folder = Path(shutil.copytree(trained_tiny_dir, tmp_path / "model"))
    damaged(folder, damage)
    fails_with(["eval", "--model", str(folder), *data[:-2], "--test-file", data[3], "--output",
                str(tmp_path / "eval.json")], f"cannot load model from folder {folder}: ", capsys)


def test_a_model_folder_with_pickle_weights_only_is_refused(tmp_path, tiny_model_dir, data, capsys):
    import torch
    from safetensors.torch import load_file

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "pickled"))
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    fails_with(["train", "--model", str(folder), *data, "--output-dir", str(tmp_path / "out")],
               f"{folder} has no safetensors weights (only pytorch_model.bin, pickle files that can run code when "
               "loaded); rift loads safetensors only", capsys)


@pytest.mark.parametrize("command", ["train", "attack"])
def test_a_full_disk_is_one_line_and_the_command_continues_after(tmp_path, trained_tiny_dir, tiny_model_dir, data,
                                                                  capsys, monkeypatch, command):
    import errno
    import os

    out = tmp_path / "out"
    model = tiny_model_dir if command == "train" else trained_tiny_dir
    argv = [command, "--model", model, *data[:-2], "--test-file", data[3], "--output-dir", str(out)]
    if command == "attack":
        argv += ["--num-examples", "4", "--allow-label-mismatch"]
    fsync = os.fsync

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"rift: error: cannot write ({out}") and "No space left on device; free the space" in line
    monkeypatch.setattr(os, "fsync", fsync)
    assert main([*argv, *(["--resume"] if command == "train" else [])]) == 0


def test_a_model_folder_without_tokenizer(tmp_path, tiny_model_dir, data, capsys):
    # transformers builds a tokenizer of the special tokens alone for such a folder: every word would be [UNK]
    tokenizer_files = [path.name for path in Path(tiny_model_dir).iterdir()
                       if path.name not in ("config.json", "model.safetensors")]
    folder = model_copy(tiny_model_dir, tmp_path / "model", tuple(tokenizer_files))
    fails_with(["train", "--model", str(folder), *data, "--output-dir", str(tmp_path / "out")],
               "has no tokenizer (no vocabulary besides the special tokens)", capsys)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_model_without_a_fast_tokenizer(tiny_model_dir, monkeypatch):
    import transformers

    from rift.models import load_tokenizer

    real = transformers.AutoTokenizer.from_pretrained

    def slow(*args, **kwargs):
        tokenizer = real(*args, **kwargs)
        monkeypatch.setattr(type(tokenizer), "is_fast", property(lambda self: False))
        return tokenizer

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", slow)
    with pytest.raises(RiftError, match="has no fast tokenizer; rift needs one to align words with tokens"):
        load_tokenizer(tiny_model_dir)


def test_an_empty_training_split(tmp_path, tiny_model_dir, sentiment_task):
    from rift.arguments import TrainingArguments
    from rift.training.run import train_run

    task = TaskData(name="empty", label_names=sentiment_task.label_names,
                    splits={"train": [], "dev": sentiment_task.splits["dev"], "test": sentiment_task.splits["test"]})
    args = TrainingArguments.build(output_dir=str(tmp_path / "out"), model=tiny_model_dir, max_length=32)
    with pytest.raises(RiftError, match="the training split is empty"):
        train_run(args, task=task, log=lambda *a: None)


def test_a_class_balanced_batch_smaller_than_the_classes(tmp_path, tiny_model_dir, data, capsys):
    fails_with(["train", "--model", tiny_model_dir, *data, "--method", "rift", "--batch-size", "1",
                "--output-dir", str(tmp_path / "out")],
               "a class-balanced batch needs an example of each of the 2 classes: --batch-size must be at least 2, "
               "got 1", capsys)


def test_duplicate_label_names(tmp_path, tiny_model_dir, data, capsys):
    fails_with(["train", "--model", tiny_model_dir, *data, "--label-names", "neg,neg",
                "--output-dir", str(tmp_path / "out")], "label names must be distinct, got ['neg', 'neg']", capsys)


def test_a_yaml_file_that_is_not_a_mapping(tmp_path, capsys):
    config = tmp_path / "list.yaml"
    config.write_text("- epochs\n- 3\n")
    fails_with(["train", "--config", str(config), "--output-dir", str(tmp_path / "out")],
               f"{config}: expected a mapping of option names to values", capsys)


def test_a_record_into_its_own_folder(tmp_path, capsys):
    (tmp_path / "bench" / "cells").mkdir(parents=True)
    for destination in ("bench", "bench/", "./bench"):
        fails_with(["record", str(tmp_path / "bench"), str(tmp_path / destination)],
                   "the record must go to another folder than the bench itself", capsys)
    fails_with(["record", str(tmp_path / "nothing"), str(tmp_path / "record")],
               f"{tmp_path / 'nothing'} is not a rift bench folder (no cells/ inside)", capsys)


def test_a_report_without_results(tmp_path, capsys):
    (tmp_path / "bench").mkdir()
    fails_with(["report", str(tmp_path / "bench")],
               f"{tmp_path / 'bench'} holds no results.json; run rift bench --output-dir", capsys)


def test_a_genetic_population_below_two(tmp_path, trained_tiny_dir, data, capsys):
    fails_with(["attack", "--model", trained_tiny_dir, *data[:-2], "--label-names", "neg,pos", "--allow-label-mismatch",
                "--attack", "genetic",
                "--population", "1", "--split", "train", "--output-dir", str(tmp_path / "out")],
               "--population must be >= 2, got 1", capsys)
