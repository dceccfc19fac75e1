"""A component of one's own: one module written by the test, one registration line, no other change to rift, and
the commands, the API and RobustTrainer take it by name."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from conftest import sentiment_examples
from test_distributed import data_options

import rift
from rift.cli import main

OBJECTIVE = '''
from dataclasses import dataclass

import torch.nn.functional as F

from rift.config import option
from rift.data.batching import model_inputs
from rift.models import classify
from rift.objectives.base import Objective


@dataclass
class SmoothedOptions:
    smoothing: float = option(0.1, "label smoothing of the cross-entropy", at_least=0, at_most=1)


class SmoothedObjective(Objective):
    name = "smoothed"
    description = "cross-entropy with label smoothing (a component written by a test)"
    Options = SmoothedOptions

    def __init__(self, args):
        super().__init__()
        self.smoothing = args.smoothing

    def loss(self, model, batch):
        logits = classify(model, **model_inputs(batch)).logits
        ce = F.cross_entropy(logits, batch["labels"], label_smoothing=self.smoothing)
        return {"loss": ce, "ce": ce}
'''

ADVERSARY = '''
from dataclasses import dataclass

from rift.adversaries.base import SubstitutionOptions, WordAdversary, clean_logits, word_surface
from rift.config import option
from rift.data import Example
from rift.text.words import replace_words


@dataclass
class FirstSubstituteOptions(SubstitutionOptions):
    changed_words: int = option(1, "words of each example replaced by their first substitute", at_least=1)


class FirstSubstituteAdversary(WordAdversary):
    name = "first-substitute"
    description = "the first words that have substitutes, each replaced by its first (a component written by a test)"
    Options = FirstSubstituteOptions

    def adversarial_examples(self, model, batch):
        examples = []
        for index in batch["index"].tolist():
            example, alignment = self.examples[index], self.alignments[index]
            found = [(i, subs[0]) for i, subs in enumerate(word_surface(alignment, self.source)) if subs]
            replacements = dict(found[:self.args.changed_words])
            examples.append(Example(replace_words(example.text, alignment.segments[-1], replacements), example.label))
        return examples, clean_logits(model, batch)
'''

ATTACK = '''
from dataclasses import dataclass

from rift.attacks.engine import WordSubstitutionAttack, greedy_substitution
from rift.config import option


@dataclass
class FirstWordsOptions:
    first_words: int = option(1, "first-word: how many of the first words with substitutes may change", at_least=1)


class FirstWordAttack(WordSubstitutionAttack):
    """Greedy substitution of the first words that have substitutes, and of no other."""

    name = "first-word"
    Options = FirstWordsOptions

    @classmethod
    def options_from(cls, args):
        return super().options_from(args) | {"first_words": args.first_words}

    def __init__(self, model, source, *, first_words=1, **options):
        super().__init__(model, source, **options)
        self.first_words = first_words

    def search(self, target, rng):
        return (yield from greedy_substitution(target, target.positions[:self.first_words]))
'''

TASK = '''
import random
from dataclasses import dataclass

from rift.config import option
from rift.data import Example, TaskData
from rift.data.tasks.base import Task

GOOD, BAD, FILLER = ("good", "great", "fine"), ("bad", "awful", "dull"), ("the", "movie", "plot", "was", "very")


@dataclass
class ToyOptions:
    toy_examples: int = option(48, "examples in each split of the toy task", at_least=4)


class ToyTask(Task):
    name = "toy"
    description = "made-up sentiment sentences (a component written by a test)"
    title = "Toy sentiment"
    Options = ToyOptions

    def read(self, data_dir, log, scored_split=None):
        rng = random.Random(0)

        def example(label):
            words = rng.sample(FILLER, 3) + [rng.choice(GOOD if label else BAD)]
            rng.shuffle(words)
            return Example(" ".join(words) + " .", label)

        n = self.args.toy_examples
        return TaskData("toy", ["negative", "positive"],
                        {split: [example(i % 2) for i in range(n)] for split in ("train", "dev", "test")})
'''


@pytest.fixture
def own_components(tmp_path, monkeypatch):
    """The four modules on the path and registered, each with its one line; the registry is restored afterwards."""
    monkeypatch.setattr(rift.registry, "_COMPONENTS", copy.deepcopy(rift.registry._COMPONENTS))
    for module, text in (("my_objective", OBJECTIVE), ("my_adversary", ADVERSARY), ("my_attack", ATTACK),
                         ("my_task", TASK)):
        (tmp_path / f"{module}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    rift.registry.register("objective", "smoothed", "my_objective:SmoothedObjective")
    rift.registry.register("adversary", "first-substitute", "my_adversary:FirstSubstituteAdversary")
    rift.registry.register("attack", "first-word", "my_attack:FirstWordAttack")
    rift.registry.register("task", "toy", "my_task:ToyTask")


def test_own_components_are_offered_trained_attacked_and_described(own_components, tmp_path, tiny_model_dir,
                                                                   capsys):
    for command, groups in (("train", ["options of --method smoothed:\n  --smoothing",
                                       "options of --adversary first-substitute:\n  --changed-words",
                                       "options of --task toy:\n  --toy-examples"]),
                            ("attack", ["options of --attack first-word:\n  --first-words",
                                        "options of --task toy:\n  --toy-examples"])):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert all(group in shown for group in groups), shown

    run = tmp_path / "run"
    assert main(["train", "--method", "smoothed", "--smoothing", "0.2", "--model", tiny_model_dir,
                 *data_options(tmp_path), "--epochs", "2", "--learning-rate", "3e-3", "--output-dir", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["method"] == "smoothed"
    assert yaml.safe_load((run / "rift_config.yaml").read_text())["smoothing"] == 0.2
    card = (run / "README.md").read_text()
    assert "cross-entropy with label smoothing (a component written by a test)" in card and "smoothing" in card

    adversarial = tmp_path / "adversarial"
    assert main(["train", "--method", "ascc", "--adversary", "first-substitute", "--changed-words", "2",
                 "--model", tiny_model_dir, *data_options(tmp_path), "--epochs", "1", "--learning-rate", "3e-3",
                 "--output-dir", str(adversarial)]) == 0
    assert json.loads((adversarial / "metrics.json").read_text())["adversary"]["name"] == "first-substitute"
    assert "each replaced by its first (a component written by a test)" in (adversarial / "README.md").read_text()

    attacked = tmp_path / "attacked"
    assert main(["attack", "--model", str(run), *data_options(tmp_path), "--attack", "first-word,pwws",
                 "--first-words", "1", "--output-dir", str(attacked)]) == 0
    results = json.loads((attacked / "results.json").read_text())["attacks"]
    first_word, pwws = results["first-word"], results["pwws"]
    assert first_word["num_examples"] == pwws["num_examples"] == 40
    # one word may change where PWWS may change every word: the own attack is never stronger
    assert first_word["robust_accuracy"] >= pwws["robust_accuracy"]
    records = [json.loads(line) for line in (attacked / "examples_first-word.jsonl").read_text().splitlines()]
    assert all(len(record["changes"]) <= 1 for record in records)

    toy = tmp_path / "toy"
    assert main(["train", "--task", "toy", "--toy-examples", "32", "--model", tiny_model_dir, "--epochs", "1",
                 "--max-length", "16", "--output-dir", str(toy)]) == 0
    metrics = json.loads((toy / "metrics.json").read_text())
    assert (metrics["num_train_examples"], yaml.safe_load((toy / "rift_config.yaml").read_text())["toy_examples"]) == (
        32, 32)
    assert "on Toy sentiment (made-up sentiment sentences (a component written by a test))" in (
        toy / "README.md").read_text()
    assert main(["attack", "--model", str(toy), "--task", "toy", "--toy-examples", "8", "--attack", "first-word",
                 "--output-dir", str(tmp_path / "toy-attacked")]) == 0
    assert json.loads((tmp_path / "toy-attacked" / "results.json").read_text())["attacks"]["first-word"][
        "num_examples"] == 8


@pytest.mark.parametrize("command, message", [
    (["train", "--method", "standard", "--smoothing", "0.2"],
     "--smoothing is not read by --method standard; it is an option of --method smoothed"),
    (["train", "--method", "ascc", "--adversary", "discrete", "--changed-words", "2"],
     "--changed-words is not read by --adversary discrete; it is an option of --adversary first-substitute"),
    (["train", "--method", "smoothed", "--smoothing", "2"], "--smoothing must be >= 0 and <= 1, got 2"),
    (["attack", "--model", "unused", "--attack", "pwws", "--first-words", "2"],
     "--first-words is not read by --attack pwws; it is an option of --attack first-word"),
    (["train", "--task", "sst2", "--toy-examples", "8"],
     "--toy-examples is not read by --task sst2; it is an option of --task toy"),
    (["train", "--task", "toy", "--toy-examples", "2"], "--toy-examples must be >= 4, got 2"),
])
def test_options_of_own_components_are_checked_and_refused_where_unread(own_components, tmp_path, capsys, command,
                                                                         message):
    assert main([*command, "--output-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"rift: error: {message}" and not (tmp_path / "out").exists()


def test_own_components_through_the_api_robust_trainer_and_bench(own_components, tmp_path, tiny_model_dir):
    import datasets
    import transformers

    data_options(tmp_path)
    trained = rift.train(method="smoothed", model=tiny_model_dir, task="toy", toy_examples=16, max_length=16,
                         epochs=1, smoothing=0.3, output_dir=str(tmp_path / "api"))
    assert (trained.metrics["method"], trained.metrics["num_train_examples"]) == ("smoothed", 16)
    saved = yaml.safe_load((tmp_path / "api" / "rift_config.yaml").read_text())
    assert (saved["smoothing"], saved["toy_examples"]) == (0.3, 16)
    assert [len(split) for split in rift.load_task("toy", toy_examples=12).splits.values()] == [12, 12, 12]
    report = rift.attack(model=str(tmp_path / "api"), task="toy", toy_examples=8, max_length=16, attack=["first-word"],
                         first_words=2, output_dir=str(tmp_path / "api-attacked"))
    assert report.attacks["first-word"].num_examples == 8
    assert yaml.safe_load((tmp_path / "api-attacked" / "attack_config.yaml").read_text())["first_words"] == 2
    with pytest.raises(rift.RiftError, match="^--smoothing is not read by --method standard; it is an option of "
                                             "--method smoothed$"):
        rift.train(method="standard", smoothing=0.3, output_dir=str(tmp_path / "refused"))

    rows = [{"text": e.text, "label": e.label} for e in sentiment_examples(32, 0)]
    args = transformers.TrainingArguments(str(tmp_path / "hf"), per_device_train_batch_size=8, max_steps=2,
                                          report_to=[], save_strategy="no", use_cpu=True)
    model = rift.load_classifier(tiny_model_dir, label_names=["negative", "positive"])
    tokenizer = rift.load_tokenizer(tiny_model_dir)
    trainer = rift.RobustTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, method="smoothed", robust_options={"smoothing": 0.3})
    assert type(trainer.objective).__name__ == "SmoothedObjective" and trainer.objective.smoothing == 0.3
    assert trainer.train().global_step == 2
    trainer = rift.RobustTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, method="ascc",
                                 robust_options={"adversary": "first-substitute", "changed_words": 2})
    assert type(trainer.objective.adversary).__name__ == "FirstSubstituteAdversary"
    assert trainer.train().global_step == 2
    with pytest.raises(rift.RiftError, match="^robust_options: --changed-words is not read by --adversary ascc; it is "
                                             "an option of --adversary first-substitute$"):
        rift.RobustTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                           processing_class=tokenizer, method="ascc", robust_options={"changed_words": 2})

    bench = tmp_path / "bench"
    config = tmp_path / "train.yaml"  # rift bench takes the data options of every cell's training from a file
    config.write_text(f"train_file: {tmp_path / 'train.csv'}\ndev_file: {tmp_path / 'train.csv'}\n"
                      f"test_file: {tmp_path / 'test.csv'}\ntext_column: review\nlabel_column: sentiment\n"
                      "label_names: negative,positive\n")
    arms = tmp_path / "arms.yaml"
    arms.write_text("smoothed-0.3: {method: smoothed, smoothing: 0.3}\n")
    assert main(["bench", "--task", "file", "--train-config", str(config), "--arms", str(arms),
                 "--methods", "standard,smoothed,smoothed-0.3,ascc+first-substitute", "--attacks", "first-word",
                 "--model", tiny_model_dir,
                 "--epochs", "1", "--max-length", "32", "--num-examples", "8", "--num-threads", "1",
                 "--output-dir", str(bench)]) == 0
    summary = json.loads((bench / "results.json").read_text())["summary"]
    assert [row["method"] for row in summary] == ["standard", "smoothed", "smoothed-0.3", "ascc+first-substitute"]
    saved = [yaml.safe_load((bench / "cells" / f"file-{name}-s0" / "rift_config.yaml").read_text()).get("smoothing")
             for name in ("standard", "smoothed", "smoothed-0.3")]
    assert saved == [None, 0.1, 0.3]
    toy = tmp_path / "toy-bench"  # the own task in a grid, with its option from the cells' training file
    config.write_text("toy_examples: 16\n")
    assert main(["bench", "--task", "toy", "--train-config", str(config), "--arms", str(arms), "--methods",
                 "smoothed-0.3", "--attacks", "first-word", "--model", tiny_model_dir, "--epochs", "1",
                 "--max-length", "16", "--num-examples", "8", "--num-threads", "1", "--output-dir", str(toy)]) == 0
    assert json.loads((toy / "cells" / "toy-smoothed-0.3-s0" / "metrics.json").read_text())["num_train_examples"] == 16
    assert all(row["metrics"]["first-word/robust_accuracy"]["mean"] is not None for row in summary)
