"""``file``: the user's own data files (.csv, .tsv, .jsonl or .json, optionally .gz; .parquet; or a folder written by
``datasets.save_to_disk``), with the columns and label names its options name. A missing dev or test file is a
stratified 10% of the training file, carved with the fixed split seed."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rift.config import option
from rift.data.examples import DataError, TaskData
from rift.data.readers import read_records
from rift.data.splits import stratified_split
from rift.data.tasks.base import SPLIT_SEED, SPLITS, Task, examples_of, label_key
from rift.errors import RiftError

_INTEGER = re.compile(r"0|[1-9][0-9]*")
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


@dataclass
class FileOptions:
    train_file: str | None = option(None, "training data (.csv, .tsv, .jsonl or .json, optionally .gz; .parquet; or "
                                          "a folder written by datasets.save_to_disk)")
    dev_file: str | None = option(None, "development data")
    test_file: str | None = option(None, "test data")
    text_column: str = option("text", "column of the text")
    text_pair_column: str | None = option(None, "column of the second text (pair tasks)")
    label_column: str = option("label", "column of the label")
    label_names: list[str] | None = option(None, "label names in id order")


class FileTask(Task):
    name = "file"
    description = "the user's own data files"
    Options = FileOptions

    def source(self) -> str:
        return str(self.args.train_file)

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        args = self.args
        return load_files(args.train_file, args.dev_file, args.test_file, args.text_column, args.text_pair_column,
                          args.label_column, args.label_names, log, scored_split)


def label_ids(
    label_names: list[str] | None, train_values: Sequence[object], log: Callable[[str], None], where: str = "file"
) -> tuple[list[str], dict[str, int]]:
    """Label names and the map from label values to ids.

    Given names accept a name or its 0-based index; otherwise integer labels are ids as they are (names '0'..'max')
    and string labels are numbered in sorted order of the distinct training labels. A number that is not such an id
    (-1, 1.0, 01) is refused: read as a name, it would make a class of its own beside 1.
    """
    if label_names is not None:
        if len(set(label_names)) != len(label_names):
            raise RiftError(f"label names must be distinct, got {label_names}")
        ids = {n: i for i, n in enumerate(label_names)}
        for i in range(len(label_names)):
            ids.setdefault(str(i), i)  # a name wins over an index that reads the same
        return list(label_names), ids
    keys = {k for k in map(label_key, train_values) if k}
    odd = sorted(k for k in keys if _NUMBER.fullmatch(k) and not _INTEGER.fullmatch(k))
    if odd:
        raise DataError(f"{where}: label {odd[0]!r} is a number but not a class id (0, 1, 2, ...); write the labels as "
                        "class ids or as names (--label-names names the classes in id order)")
    if keys and all(_INTEGER.fullmatch(k) for k in keys):
        names = [str(i) for i in range(max(map(int, keys)) + 1)]
        unused = [n for n in names if n not in keys]
        if unused:
            log(f"file: integer labels are used as ids; no training example has id {', '.join(unused)}")
    else:
        names = sorted(keys)
    return names, {n: i for i, n in enumerate(names)}


def warn_multiline(path: Path, examples: list, log: Callable[[str], None]) -> None:
    """Says how many texts span several lines: a quoted field with line breaks, or a stray quote that merged the
    rows after it into one text."""
    spanning = [e for e in examples if "\n" in e.text or "\n" in (e.text_pair or "")]
    if spanning:
        log(f"warning: {path}: {len(spanning)} of {len(examples)} texts span several lines (a quoted field with line "
            "breaks, or a stray quote that merged the rows after it)")


def load_files(
    train_file: str | os.PathLike | None,
    dev_file: str | os.PathLike | None,
    test_file: str | os.PathLike | None,
    text_column: str,
    text_pair_column: str | None,
    label_column: str,
    label_names: list[str] | None,
    log: Callable[[str], None],
    scored_split: str | None = None,
) -> TaskData:
    columns = [c for c in (text_column, text_pair_column, label_column) if c is not None]
    files = {s: Path(f) for s, f in zip(SPLITS, (train_file, dev_file, test_file)) if f is not None}
    if train_file is None:
        if scored_split is None:
            raise RiftError("task 'file' needs a training file (--train-file)")
        if scored_split not in files:
            raise RiftError(f"task 'file' needs the file of the {scored_split} split (--{scored_split}-file)")
        path = files[scored_split]
        records = read_records(path, columns)
        names, ids = label_ids(label_names, [rec[label_column] for _, rec in records], log, str(path))
        scored = examples_of(path, records, text_column, text_pair_column, label_column, ids)
        warn_multiline(path, scored, log)
        return TaskData("file", names, {s: scored if s == scored_split else [] for s in SPLITS})
    records = {s: read_records(path, columns) for s, path in files.items()}
    names, ids = label_ids(label_names, [rec[label_column] for _, rec in records["train"]], log, str(files["train"]))
    splits = {
        s: examples_of(files[s], recs, text_column, text_pair_column, label_column, ids) for s, recs in records.items()
    }
    for split, examples in splits.items():
        warn_multiline(files[split], examples, log)
    missing = [s for s in ("dev", "test") if s not in splits]
    if missing:
        parts = stratified_split(splits["train"], (1 - 0.1 * len(missing),) + (0.1,) * len(missing), SPLIT_SEED)
        splits["train"] = parts[0]
        for split, part in zip(missing, parts[1:]):
            if not part:
                raise DataError(f"{files['train']}: too few examples to carve a {split} split; give a {split} file")
            splits[split] = part
        log(
            f"file: no {' or '.join(missing)} file given; each is a stratified 10% of {files['train']} "
            f"(fixed split seed {SPLIT_SEED})"
        )
    return TaskData("file", names, {s: splits[s] for s in SPLITS})
