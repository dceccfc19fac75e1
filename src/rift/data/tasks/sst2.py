"""``sst2``: the Stanford Sentiment Treebank, binary sentence-level sentiment (GLUE's train, dev and labelled test)."""

from __future__ import annotations

from rift.data.examples import TaskData
from rift.data.tasks.base import SPLITS, Task, resolve_data_dir, shared_examples

BINARY = {"0": 0, "1": 1}


class SST2(Task):
    name = "sst2"
    description = "binary sentiment of movie-review sentences (Socher et al. 2013)"
    title = "SST-2"
    hub_dataset = "stanfordnlp/sst2"

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        root = resolve_data_dir(data_dir)
        files = ("train_full.tsv", "dev.tsv", "test-labeled.tsv")
        return TaskData("sst2", ["negative", "positive"], {
            split: shared_examples(root, "sst2", name, "sentence", None, "label", BINARY)
            for split, name in zip(SPLITS, files)})
