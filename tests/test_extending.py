"""A component of one's own: one module written by the test, one registration line, no other change to rift, and
the commands, the API and RobustTrainer take it by name."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import sentiment_examples
from test_distributed import data_options

import rift
from rift.cli import main

OBJECTIVE = '''
import torch.nn.functional as F

from rift.data.batching import model_inputs
from rift.models import classify
from rift.objectives.base import Objective


class SmoothedObjective(Objective):
    name = "smoothed"
    description = "cross-entropy with label smoothing 0.1 (a component written by a test)"

    def __init__(self, args=None):
        super().__init__()

    def loss(self, model, batch):
        logits = classify(model, **model_inputs(batch)).logits
        ce = F.cross_entropy(logits, batch["labels"], label_smoothing=0.1)
        return {"loss": ce, "ce": ce}
'''

ATTACK = '''
from rift.attacks.engine import WordSubstitutionAttack, greedy_substitution


class FirstWordAttack(WordSubstitutionAttack):
    """Greedy substitution of the first word that has substitutes, and of no other."""

    name = "first-word"

    def search(self, target, rng):
        return (yield from greedy_substitution(target, target.positions[:1]))
'''


@pytest.fixture
def own_components(tmp_path, monkeypatch):
    """The two modules on the path and registered, each with its one line; the registry is restored afterwards."""
    monkeypatch.setattr(rift.registry, "_COMPONENTS", copy.deepcopy(rift.registry._COMPONENTS))
    (tmp_path / "my_objective.py").write_text(OBJECTIVE)
    (tmp_path / "my_attack.py").write_text(ATTACK)
    monkeypatch.syspath_prepend(str(tmp_path))
    rift.registry.register("objective", "smoothed", "my_objective:SmoothedObjective")
    rift.registry.register("attack", "first-word", "my_attack:FirstWordAttack")


def test_own_components_are_offered_trained_attacked_and_described(own_components, tmp_path, tiny_model_dir,
                                                                   capsys):
    for command, name in (("train", "smoothed"), ("attack", "first-word")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert name in capsys.readouterr().out

    run = tmp_path / "run"
    assert main(["train", "--method", "smoothed", "--model", tiny_model_dir, *data_options(tmp_path), "--epochs", "2",
                 "--learning-rate", "3e-3", "--output-dir", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["method"] == "smoothed"
    assert "cross-entropy with label smoothing 0.1 (a component written by a test)" in (run / "README.md").read_text()

    attacked = tmp_path / "attacked"
    assert main(["attack", "--model", str(run), *data_options(tmp_path), "--attack", "first-word,pwws",
                 "--output-dir", str(attacked)]) == 0
    results = json.loads((attacked / "results.json").read_text())["attacks"]
    first_word, pwws = results["first-word"], results["pwws"]
    assert first_word["num_examples"] == pwws["num_examples"] == 40
    # one word may change where PWWS may change every word: the own attack is never stronger
    assert first_word["robust_accuracy"] >= pwws["robust_accuracy"]
    records = [json.loads(line) for line in (attacked / "examples_first-word.jsonl").read_text().splitlines()]
    assert all(len(record["changes"]) <= 1 for record in records)


def test_own_components_through_the_api_robust_trainer_and_bench(own_components, tmp_path, tiny_model_dir):
    import datasets
    import transformers

    data_options(tmp_path)
    trained = rift.train(method="smoothed", model=tiny_model_dir, task="file", train_file=str(tmp_path / "train.csv"),
                         dev_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "test.csv"),
                         text_column="review", label_column="sentiment", label_names=["negative", "positive"],
                         max_length=32, epochs=1, output_dir=str(tmp_path / "api"))
    assert trained.metrics["method"] == "smoothed"

    rows = [{"text": e.text, "label": e.label} for e in sentiment_examples(32, 0)]
    args = transformers.TrainingArguments(str(tmp_path / "hf"), per_device_train_batch_size=8, max_steps=2,
                                          report_to=[], save_strategy="no", use_cpu=True)
    model = rift.load_classifier(tiny_model_dir, label_names=["negative", "positive"])
    trainer = rift.RobustTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=rift.load_tokenizer(tiny_model_dir), method="smoothed")
    assert type(trainer.objective).__name__ == "SmoothedObjective"
    assert trainer.train().global_step == 2

    bench = tmp_path / "bench"
    config = tmp_path / "train.yaml"  # rift bench takes the data options of every cell's training from a file
    config.write_text(f"train_file: {tmp_path / 'train.csv'}\ndev_file: {tmp_path / 'train.csv'}\n"
                      f"test_file: {tmp_path / 'test.csv'}\ntext_column: review\nlabel_column: sentiment\n"
                      "label_names: negative,positive\n")
    assert main(["bench", "--task", "file", "--train-config", str(config), "--methods", "standard,smoothed",
                 "--attacks", "first-word", "--model", tiny_model_dir, "--epochs", "1", "--max-length", "32",
                 "--num-examples", "8", "--num-threads", "1", "--output-dir", str(bench)]) == 0
    summary = json.loads((bench / "results.json").read_text())["summary"]
    assert [row["method"] for row in summary] == ["standard", "smoothed"]
    assert all(row["metrics"]["first-word/robust_accuracy"]["mean"] is not None for row in summary)
