"""``imdb``: aclImdb movie reviews, re-split into train/dev/test by the file lists of Jia et al. (2019)."""

from __future__ import annotations

import re

from rift.data.examples import DataError, Example, TaskData
from rift.data.readers import read_records, read_text
from rift.data.tasks.base import SPLITS, Task, examples_of, resolve_data_dir, shared_file
from rift.data.tasks.sst2 import BINARY


def clean_review(text: str) -> str:
    return " ".join(re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE).split())


class IMDB(Task):
    name = "imdb"
    description = "binary sentiment of whole movie reviews (Maas et al. 2011), split as Jia et al. (2019)"
    title = "IMDB"
    hub_dataset = "stanfordnlp/imdb"

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        root = resolve_data_dir(data_dir)
        reviews: dict[str, dict[str, Example]] = {}
        for part in ("train", "test"):
            path = shared_file(root, "imdb", f"{part}.jsonl.gz")
            records = read_records(path, ("file", "text", "label"))
            examples = examples_of(path, records, "text", None, "label", BINARY, clean_review)
            reviews[part] = {str(rec["file"]): ex for (_, rec), ex in zip(records, examples)}
        splits = {}
        for split, part in zip(SPLITS, ("train", "train", "test")):
            path = shared_file(root, "imdb", "splits", f"imdb_{split}_files.txt")
            splits[split] = []
            for line, name in enumerate(read_text(path).split("\n"), 1):
                name = name.strip()
                if not name:
                    continue
                if name not in reviews[part]:
                    raise DataError(f"{path}, line {line}: no review {name!r} in imdb/{part}.jsonl.gz")
                splits[split].append(reviews[part][name])
        return TaskData("imdb", ["negative", "positive"], splits)
