"""``snli``: natural-language inference on premise-hypothesis pairs. SNLI's train split is not available offline:
train (8,842) and dev (1,000) are a fixed split of its validation split; test is its test split."""

from __future__ import annotations

from rift.data.examples import TaskData
from rift.data.splits import stratified_split
from rift.data.tasks.base import SPLIT_SEED, Task, resolve_data_dir, shared_examples


class SNLI(Task):
    name = "snli"
    description = "entailment, neutral or contradiction of premise-hypothesis pairs (Bowman et al. 2015)"
    title = "SNLI"
    hub_dataset = "stanfordnlp/snli"

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        root = resolve_data_dir(data_dir)

        def read(filename: str):
            return shared_examples(root, "snli", filename, "premise", "hypothesis", "label", {"0": 0, "1": 1, "2": 2})

        validation = read("validation.tsv")
        dev_fraction = 1000 / len(validation)
        train, dev = stratified_split(validation, (1 - dev_fraction, dev_fraction), SPLIT_SEED)
        splits = {"train": train, "dev": dev, "test": read("test.tsv")}
        return TaskData("snli", ["entailment", "neutral", "contradiction"], splits)
