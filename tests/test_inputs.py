"""A run knows its inputs: training, attacks and bench cells record the fingerprints of the data files, synonym
tables and weights they read, and refuse to continue on inputs whose bytes changed, unless told to (and then say
so in their record)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import sentiment_examples
from safetensors.torch import load_file, save_file
from test_cli import write_csv
from test_attack_cli import data_files  # noqa: F401 (a fixture)
from test_training import Crash, CrashAtStep

from rift.arguments import TrainingArguments
from rift.cli import main
from rift.errors import RiftError
from rift.inputs import fingerprint
from rift.training.run import train_run

NAMES = ("negative", "positive")


def file_args(tmp_path: Path, model: str, data: Path, **overrides) -> TrainingArguments:
    return TrainingArguments.build(**dict(
        output_dir=str(tmp_path / "run"), model=model, task="file", train_file=str(data / "train.csv"),
        dev_file=str(data / "train.csv"), test_file=str(data / "test.csv"), text_column="review",
        label_column="sentiment", label_names=list(NAMES), epochs=2, batch_size=16, learning_rate=3e-3,
        max_length=32, save_steps=1, eval_steps=0, seed=3) | overrides)


def write_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "train.csv", sentiment_examples(64, 0), NAMES)
    write_csv(folder / "test.csv", sentiment_examples(16, 2), NAMES)
    return folder


def test_a_resumed_run_refuses_changed_data_unless_allowed_and_records_it(tmp_path, tiny_model_dir):
    data = write_data(tmp_path / "data")
    args = file_args(tmp_path, tiny_model_dir, data)
    with pytest.raises(Crash):
        train_run(args, callbacks=[CrashAtStep()], log=lambda *a: None)
    recorded = json.loads((Path(args.output_dir) / "rift_inputs.json").read_text())["files"]
    # the data files, the synonym table the task does not need is not there, and the pre-trained weights
    assert {Path(path).name for path in recorded} >= {"train.csv", "test.csv", "model.safetensors"}
    assert recorded[str((data / "train.csv").resolve())] == fingerprint(data / "train.csv")

    # an edited file at the same path holds other examples under the same indices
    write_csv(data / "train.csv", list(reversed(sentiment_examples(64, 5))), NAMES)
    resumed = file_args(tmp_path, tiny_model_dir, data, resume=True)
    with pytest.raises(RiftError, match=r"train\.csv changed since it was read there"):
        train_run(resumed, log=lambda *a: None)
    allowed = file_args(tmp_path, tiny_model_dir, data, resume=True, allow_changed_data=True)
    assert train_run(allowed, log=lambda *a: None)["steps"] > 0
    saved = json.loads((Path(args.output_dir) / "rift_inputs.json").read_text())
    assert any(path.endswith("train.csv") for path in saved["changed_data"])


def test_an_attack_folder_refuses_other_weights_at_the_same_path(tmp_path, trained_tiny_dir, data_files, capsys):
    model = Path(shutil.copytree(trained_tiny_dir, tmp_path / "model"))
    out = tmp_path / "attack"
    command = ["attack", "--model", str(model), *data_files, "--attack", "pwws", "--num-examples", "4",
               "--output-dir", str(out)]
    assert main(command) == 0
    recorded = json.loads((out / "rift_inputs.json").read_text())["files"]
    assert str((model / "model.safetensors").resolve()) in recorded
    assert any(path.endswith("counterfitted_neighbors.json") for path in recorded)
    # the model trained again in its folder: the records by index would mix two models' answers
    weights = load_file(model / "model.safetensors")
    save_file({name: tensor * 1.01 for name, tensor in weights.items()}, model / "model.safetensors",
              metadata={"format": "pt"})
    more = [*command[:command.index("pwws")], "pwws,genetic", *command[command.index("pwws") + 1:]]
    assert main(more) == 2
    assert "model.safetensors changed since it was read there" in capsys.readouterr().err
    assert main([*more, "--allow-changed-data", "--population", "4", "--generations", "2"]) == 0
    assert json.loads((out / "rift_inputs.json").read_text())["changed_data"] == [str((model / "model.safetensors").resolve())]


def test_an_attack_folder_goes_on_with_the_same_weights_moved_and_refuses_others(tmp_path, trained_tiny_dir, data_files,
                                                                                 capsys):
    model = Path(shutil.copytree(trained_tiny_dir, tmp_path / "model"))
    out = tmp_path / "attack"
    command = ["attack", "--model", str(model), *data_files, "--attack", "pwws", "--num-examples", "4",
               "--output-dir", str(out)]
    assert main(command) == 0
    more = ["--attack", "pwws,genetic", "--population", "4", "--generations", "2"]
    moved = Path(shutil.copytree(model, tmp_path / "moved"))  # the same bytes elsewhere (a record continued)
    assert main([*command, *more, "--model", str(moved)]) == 0
    assert set(json.loads((out / "results.json").read_text())["attacks"]) == {"pwws", "genetic"}
    other = Path(shutil.copytree(model, tmp_path / "other"))  # another model elsewhere, its path unread before
    weights = load_file(other / "model.safetensors")
    save_file({name: tensor * 1.01 for name, tensor in weights.items()}, other / "model.safetensors",
              metadata={"format": "pt"})
    capsys.readouterr()
    assert main([*command, *more, "--model", str(other)]) == 2
    assert capsys.readouterr().err.strip() == f"rift: error: {out} holds results of other settings (model); choose " \
                                              "another --output-dir"
