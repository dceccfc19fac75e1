"""The built-in tasks (sst2, imdb, mr, snli, agnews) read from the shared data folder, and user files (task 'file')."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from rift.data.examples import DataError, Example, TaskData
from rift.data.readers import Record, read_records, read_text
from rift.data.splits import stratified_split, stratified_subset
from rift.errors import RiftError

TASK_NAMES: tuple[str, ...] = ("sst2", "imdb", "mr", "snli", "agnews", "file")

# Dataset splits carved by this module (mr, snli, agnews, and missing dev/test of user files) use this seed, never the
# training seed: the test set of a study must be the same for every seed of that study.
SPLIT_SEED = 0

_REPO_ROOT = Path(__file__).resolve().parents[3]  # the source checkout, for an editable install
_SPLITS = ("train", "dev", "test")
_DATA_DIR_HINT = "point to the shared data folder with --data-dir or RIFT_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir if given, else $RIFT_DATA_DIR, else the first existing of ./shared/data, ../shared/data and
    <repo root>/../shared/data, so that tests and a source checkout find the data without configuration."""
    if data_dir is not None:
        return _existing_dir(Path(data_dir), "--data-dir")
    if os.environ.get("RIFT_DATA_DIR"):
        return _existing_dir(Path(os.environ["RIFT_DATA_DIR"]), "RIFT_DATA_DIR")
    tried = [Path("shared/data").resolve(), Path("../shared/data").resolve(), _REPO_ROOT.parent / "shared" / "data"]
    for candidate in tried:
        if candidate.is_dir():
            return candidate
    raise RiftError(f"no data folder found (tried {', '.join(map(str, tried))}); {_DATA_DIR_HINT}")


def _existing_dir(path: Path, source: str) -> Path:
    if not path.is_dir():
        raise RiftError(f"data folder {path} (from {source}) does not exist or is not a folder")
    return path.resolve()


def load_task(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    train_file: str | os.PathLike | None = None,
    dev_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_names: list[str] | None = None,
    max_train_examples: int | None = None,
    max_dev_examples: int | None = None,
    max_test_examples: int | None = None,
    min_train_words: int | None = None,
    scored_split: str | None = None,
    log: Callable[[str], None] = print,
) -> TaskData:
    """A task's train/dev/test examples; `seed` only chooses the --max-*-examples subsets, never the dataset splits.
    `min_train_words` keeps only training examples of at least that many whitespace-separated words (both texts of a
    pair together), before the subset is drawn; dev and test are never filtered. ``scored_split`` (evaluation and
    attacks) lets task 'file' read only that split's file when no training file is given."""
    # the numbers are checked before any file is read
    limits = dict(zip(_SPLITS, (max_train_examples, max_dev_examples, max_test_examples)))
    for split, n in limits.items():
        if n is not None and n < 1:
            raise RiftError(f"max_{split}_examples must be at least 1, got {n}")
    if min_train_words is not None and min_train_words < 1:
        raise RiftError(f"min_train_words must be at least 1, got {min_train_words}")
    if name == "file":
        task = _load_files(
            train_file, dev_file, test_file, text_column, text_pair_column, label_column, label_names, log,
            scored_split,
        )
        source = str(train_file)
    elif name in _BUILTIN:
        if any(v is not None for v in (train_file, dev_file, test_file, text_pair_column, label_names)):
            raise RiftError(f"task {name!r} is built in; data files, columns and label names apply only to task 'file'")
        task = _BUILTIN[name](resolve_data_dir(data_dir))
        source = f"task {name}"
    else:
        raise RiftError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    only_scored = name == "file" and train_file is None  # only the scored split was read
    if min_train_words is not None and not only_scored:
        task.splits["train"] = _with_min_words(task.splits["train"], min_train_words, log)
    for split, n in limits.items():
        examples = task.splits[split]
        task.splits[split] = stratified_subset(examples, n, seed)
        if len(task.splits[split]) < len(examples):
            log(f"{split}: {n} of {len(examples)} examples (seeded, stratified)")
    classes = sorted({e.label for e in task.splits["train"]})
    if len(classes) < 2 and not only_scored:
        found = ", ".join(repr(task.label_names[c]) for c in classes) or "none"
        raise DataError(f"{source}: the train split needs examples of at least two classes, but has only: {found}")
    return task


def _with_min_words(examples: list[Example], min_words: int, log: Callable[[str], None]) -> list[Example]:
    kept = [e for e in examples if len(e.text.split()) + len((e.text_pair or "").split()) >= min_words]
    if not kept:
        raise DataError(f"no training example has at least {min_words} words (min_train_words)")
    log(f"train: {len(kept)} of {len(examples)} examples have at least {min_words} words")
    return kept


# ---- shared helpers: every text and label goes through these checks ----


def _text(path: Path, line: int, value: object, what: str, clean: Callable[[str], str] = str.strip) -> str:
    if not isinstance(value, str):
        raise DataError(f"{path}, line {line}: {what} must be a string, got {value!r}")
    text = clean(value)
    if not text:
        raise DataError(f"{path}, line {line}: {what} is empty")
    return text


def _label_key(value: object) -> str | None:
    """A label value as the string it is matched by (JSON integers included); None for other JSON types."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _label_id(path: Path, line: int, value: object, ids: dict[str, int]) -> int:
    key = _label_key(value)
    if key is None:
        raise DataError(f"{path}, line {line}: a label must be a string or an integer, got {value!r}")
    if not key:
        raise DataError(f"{path}, line {line}: the label is empty")
    if key not in ids:
        allowed = ", ".join(repr(k) for k in ids)
        raise DataError(f"{path}, line {line}: label {value!r} is not one of: {allowed}")
    return ids[key]


def _examples(
    path: Path,
    records: list[Record],
    text_column: str,
    pair_column: str | None,
    label_column: str,
    ids: dict[str, int],
    clean: Callable[[str], str] = str.strip,
) -> list[Example]:
    return [
        Example(
            text=_text(path, line, rec[text_column], f"text column {text_column!r}", clean),
            label=_label_id(path, line, rec[label_column], ids),
            text_pair=None
            if pair_column is None
            else _text(path, line, rec[pair_column], f"text pair column {pair_column!r}", clean),
        )
        for line, rec in records
    ]


def _shared(root: Path, *parts: str) -> Path:
    path = root.joinpath(*parts)
    if not path.is_file():
        raise RiftError(f"dataset file {path} not found; is {root} the shared data folder? {_DATA_DIR_HINT}")
    return path


# ---- built-in tasks ----

_BINARY = {"0": 0, "1": 1}


def _sst2(root: Path) -> TaskData:
    def read(filename: str) -> list[Example]:
        path = _shared(root, "sst2", filename)
        return _examples(path, read_records(path, ("sentence", "label")), "sentence", None, "label", _BINARY)

    files = ("train_full.tsv", "dev.tsv", "test-labeled.tsv")
    return TaskData("sst2", ["negative", "positive"], {s: read(f) for s, f in zip(_SPLITS, files)})


def _clean_imdb(text: str) -> str:
    return " ".join(re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE).split())


def _imdb(root: Path) -> TaskData:
    """aclImdb train/test, re-split into train/dev/test by the file lists of Jia et al. (2019)."""
    reviews: dict[str, dict[str, Example]] = {}
    for part in ("train", "test"):
        path = _shared(root, "imdb", f"{part}.jsonl.gz")
        records = read_records(path, ("file", "text", "label"))
        examples = _examples(path, records, "text", None, "label", _BINARY, _clean_imdb)
        reviews[part] = {str(rec["file"]): ex for (_, rec), ex in zip(records, examples)}
    splits = {}
    for split, part in zip(_SPLITS, ("train", "train", "test")):
        path = _shared(root, "imdb", "splits", f"imdb_{split}_files.txt")
        splits[split] = []
        for line, name in enumerate(read_text(path).split("\n"), 1):
            name = name.strip()
            if not name:
                continue
            if name not in reviews[part]:
                raise DataError(f"{path}, line {line}: no review {name!r} in imdb/{part}.jsonl.gz")
            splits[split].append(reviews[part][name])
    return TaskData("imdb", ["negative", "positive"], splits)


def _mr(root: Path) -> TaskData:
    """rt-polarity; the shared copy is UTF-8 (converted from ISO-8859-1 upstream, checked), so it is read as UTF-8."""
    examples = []
    for label, suffix in enumerate(("neg", "pos")):
        path = _shared(root, "mr", f"rt-polarity.{suffix}")
        lines = read_text(path).split("\n")
        if lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it does not start an empty one
        examples += [Example(_text(path, n, row, "the sentence"), label) for n, row in enumerate(lines, 1)]
    splits = stratified_split(examples, (0.8, 0.1, 0.1), SPLIT_SEED)
    return TaskData("mr", ["negative", "positive"], dict(zip(_SPLITS, splits)))


def _snli(root: Path) -> TaskData:
    """SNLI train is not available offline: train (8,842) and dev (1,000) are a fixed split of validation."""

    def read(filename: str) -> list[Example]:
        path = _shared(root, "snli", filename)
        records = read_records(path, ("premise", "hypothesis", "label"))
        return _examples(path, records, "premise", "hypothesis", "label", {"0": 0, "1": 1, "2": 2})

    validation = read("validation.tsv")
    dev_fraction = 1000 / len(validation)
    train, dev = stratified_split(validation, (1 - dev_fraction, dev_fraction), SPLIT_SEED)
    splits = {"train": train, "dev": dev, "test": read("test.tsv")}
    return TaskData("snli", ["entailment", "neutral", "contradiction"], splits)


def _clean_agnews(text: str) -> str:
    return " ".join(text.replace("\\", " ").split())  # a backslash marks a line break in AG News


def _agnews(root: Path) -> TaskData:
    """AG News test set (only part available), split 80/10/10; text = title + '. ' + description."""
    names = [n.strip() for n in read_text(_shared(root, "agnews", "classes.txt")).split("\n") if n.strip()]
    path = _shared(root, "agnews", "test.csv")
    ids = {str(i + 1): i for i in range(len(names))}
    examples = []
    for line, rec in read_records(path, (), fieldnames=("class", "title", "description")):
        title = _text(path, line, rec["title"], "the title", _clean_agnews)
        description = _text(path, line, rec["description"], "the description", _clean_agnews)
        separator = " " if title.endswith((".", "!", "?")) else ". "
        examples.append(Example(title + separator + description, _label_id(path, line, rec["class"], ids)))
    splits = stratified_split(examples, (0.8, 0.1, 0.1), SPLIT_SEED)
    return TaskData("agnews", names, dict(zip(_SPLITS, splits)))


_BUILTIN: dict[str, Callable[[Path], TaskData]] = {
    "sst2": _sst2,
    "imdb": _imdb,
    "mr": _mr,
    "snli": _snli,
    "agnews": _agnews,
}


# ---- user files ----

_INTEGER = re.compile(r"0|[1-9][0-9]*")


def _label_ids(
    label_names: list[str] | None, train_values: Sequence[object], log: Callable[[str], None]
) -> tuple[list[str], dict[str, int]]:
    """Label names and the map from label values to ids.

    Given names accept a name or its 0-based index; otherwise integer labels are ids as they are (names '0'..'max')
    and string labels are numbered in sorted order of the distinct training labels.
    """
    if label_names is not None:
        if len(set(label_names)) != len(label_names):
            raise RiftError(f"label names must be distinct, got {label_names}")
        ids = {n: i for i, n in enumerate(label_names)}
        for i in range(len(label_names)):
            ids.setdefault(str(i), i)  # a name wins over an index that reads the same
        return list(label_names), ids
    keys = {k for k in map(_label_key, train_values) if k}
    if keys and all(_INTEGER.fullmatch(k) for k in keys):
        names = [str(i) for i in range(max(map(int, keys)) + 1)]
        unused = [n for n in names if n not in keys]
        if unused:
            log(f"file: integer labels are used as ids; no training example has id {', '.join(unused)}")
    else:
        names = sorted(keys)
    return names, {n: i for i, n in enumerate(names)}


def _load_files(
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
    files = {s: Path(f) for s, f in zip(_SPLITS, (train_file, dev_file, test_file)) if f is not None}
    if train_file is None:
        if scored_split is None:
            raise RiftError("task 'file' needs a training file (--train-file)")
        if scored_split not in files:
            raise RiftError(f"task 'file' needs the file of the {scored_split} split (--{scored_split}-file)")
        path = files[scored_split]
        records = read_records(path, columns)
        names, ids = _label_ids(label_names, [rec[label_column] for _, rec in records], log)
        scored = _examples(path, records, text_column, text_pair_column, label_column, ids)
        return TaskData("file", names, {s: scored if s == scored_split else [] for s in _SPLITS})
    records = {s: read_records(path, columns) for s, path in files.items()}
    names, ids = _label_ids(label_names, [rec[label_column] for _, rec in records["train"]], log)
    splits = {
        s: _examples(files[s], recs, text_column, text_pair_column, label_column, ids) for s, recs in records.items()
    }
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
    return TaskData("file", names, {s: splits[s] for s in _SPLITS})
