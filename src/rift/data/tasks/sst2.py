"""``sst2``: the Stanford Sentiment Treebank, binary sentence-level sentiment (GLUE's train, dev and labelled test)."""

from __future__ import annotations

from rift.data.examples import Example, TaskData
from rift.data.readers import read_records
from rift.data.tasks.base import SPLITS, Task, examples_of, resolve_data_dir, shared_file

BINARY = {"0": 0, "1": 1}


class SST2(Task):
    name = "sst2"
    description = "binary sentiment of movie-review sentences (Socher et al. 2013)"
    title = "SST-2"
    hub_dataset = "stanfordnlp/sst2"

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        root = resolve_data_dir(data_dir)

        def read(filename: str) -> list[Example]:
            path = shared_file(root, "sst2", filename)
            return examples_of(path, read_records(path, ("sentence", "label")), "sentence", None, "label", BINARY)

        files = ("train_full.tsv", "dev.tsv", "test-labeled.tsv")
        return TaskData("sst2", ["negative", "positive"], {s: read(f) for s, f in zip(SPLITS, files)})
