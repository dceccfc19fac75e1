"""Shared fixtures: a tiny randomly initialised BERT with the real MiniLM WordPiece vocabulary, and a small task
whose label is decided by sentiment words, so that a few training steps must lower the loss."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network, whatever the caller's environment says
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy
import pytest
import torch

from rift.data import Example, TaskData
from rift.models import resolve_model_path

POSITIVE = ["good", "great", "wonderful", "fine", "superb", "pleasant"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "dreadful", "boring"]
FILLER = ["the", "movie", "film", "story", "was", "really", "quite", "a", "plot", "acting", "and", "very"]


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true", help="run the tests in reverse order (checks that no test "
                                                             "relies on another's side effects)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()


@pytest.fixture(autouse=True)
def fixed_random_state():
    """Every test starts from the same global random state, whichever tests ran before it."""
    random.seed(0)
    numpy.random.seed(0)
    torch.manual_seed(0)


def sentiment_examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
        examples.append(Example(" ".join(words) + " .", label))
    return examples


@pytest.fixture(scope="session")
def minilm_path() -> str:
    return resolve_model_path("minilm")


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from rift.models import load_tokenizer

    return load_tokenizer(minilm_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> str:
    """A bare tiny BERT encoder saved as a local model folder, as a user's own model would be."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def sentiment_task() -> TaskData:
    return TaskData(
        name="toy-sentiment",
        label_names=["negative", "positive"],
        splits={"train": sentiment_examples(96, 0), "dev": sentiment_examples(48, 1), "test": sentiment_examples(48, 2)},
    )


@pytest.fixture(scope="session")
def trained_tiny_dir(tmp_path_factory, tiny_model_dir, sentiment_task) -> str:
    """The tiny BERT after standard fine-tuning on the sentiment task: it reads the sentiment words."""
    from rift.arguments import TrainingArguments
    from rift.training.run import train_run

    args = TrainingArguments.build(output_dir=str(tmp_path_factory.mktemp("standard") / "run"), model=tiny_model_dir,
                             epochs=8, batch_size=16, learning_rate=3e-3, max_length=32, seed=0)
    metrics = train_run(args, task=sentiment_task, log=lambda *a: None)
    assert metrics["test_accuracy"] >= 0.9
    return args.output_dir


@dataclass
class Prepared:
    """What a training run sets up before its first step (the model with its new head, the objective, the encoded
    splits), for tests that call an objective or an adversary on a batch by hand."""

    task: TaskData
    model: Any
    tokenizer: Any
    objective: Any
    encoded: dict[str, list]

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    def context(self, current_step=lambda: 0):
        from rift.adversaries.context import TrainingContext

        return TrainingContext(model=self.model, tokenizer=self.tokenizer, num_labels=self.task.num_labels,
                               train_examples=self.task.splits["train"], train_items=self.encoded["train"],
                               device=torch.device("cpu"), log=lambda *a: None, current_step=current_step)


def prepared(args, task: TaskData, objective=None) -> Prepared:
    """The run of ``args`` on ``task`` prepared as ``rift train`` prepares it (the seed set before the head is
    drawn), without training; ``objective.setup(prepared.context())`` is left to the test."""
    from accelerate.utils import set_seed

    from rift.models import load_classifier, load_tokenizer
    from rift.objectives import build_objective
    from rift.data.batching import encode_examples

    set_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    model = load_classifier(args.model, task.label_names)
    encoded = {split: encode_examples(tokenizer, examples, args.max_length) for split, examples in task.splits.items()}
    return Prepared(task, model, tokenizer, objective or build_objective(args), encoded)
