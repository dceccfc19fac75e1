"""The contract of every task, and the checks every text and label goes through.

A task reads its train, dev and test examples and knows its label names (``rift.data.examples.TaskData``). It is
registered by name (``rift.registry``, kind ``task``) and declares its own options, if any, in an ``Options``
dataclass of its module, as objectives, adversaries and attacks do: task ``file`` declares its files and columns.
The subsets (``--max-train-examples``), the word filter and the checks common to every task are ``load_task``'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rift.config import NoOptions
from rift.data.examples import DataError, Example, TaskData
from rift.data.readers import Record, read_records
from rift.errors import RiftError

# Dataset splits carved by the tasks (mr, snli, agnews, and missing dev/test of user files) use this seed, never the
# training seed: the test set of a study must be the same for every seed of that study.
SPLIT_SEED = 0
SPLITS = ("train", "dev", "test")

_REPO_ROOT = Path(__file__).resolve().parents[4]  # the source checkout, for an editable install
_DATA_DIR_HINT = "point to the shared data folder with --data-dir or RIFT_DATA_DIR"


class Task:
    name: ClassVar[str]
    # one line for people: the model card says what a model was trained on
    description: ClassVar[str] = ""
    # its own options (flags and YAML keys of every command that reads a task), a dataclass of rift.config.option
    Options: ClassVar[type] = NoOptions
    # the dataset's name in model cards (default: the task's name) and its Hugging Face Hub id, for their metadata
    title: ClassVar[str | None] = None
    hub_dataset: ClassVar[str | None] = None

    def __init__(self, args=None):
        """``args`` holds the task's options (a command's options object, or an ``Options``)."""
        self.args = args

    def read(self, data_dir: str | os.PathLike | None, log: Callable[[str], None],
             scored_split: str | None = None) -> TaskData:
        """Every split's examples. ``scored_split`` (evaluation and attacks) names the only split that will be
        read; a task may then leave the others empty (task ``file`` without a training file)."""
        raise NotImplementedError

    def source(self) -> str:
        """Where the training examples come from, as messages about them name it."""
        return f"task {self.name}"


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


def shared_file(root: Path, *parts: str) -> Path:
    """A file of a built-in task in the shared data folder ``root``."""
    path = root.joinpath(*parts)
    if not path.is_file():
        raise RiftError(f"dataset file {path} not found; is {root} the shared data folder? {_DATA_DIR_HINT}")
    return path


def text_of(path: Path, line: int, value: object, what: str, clean: Callable[[str], str] = str.strip) -> str:
    if not isinstance(value, str):
        raise DataError(f"{path}, line {line}: {what} must be a string, got {value!r}")
    text = clean(value)
    if not text:
        raise DataError(f"{path}, line {line}: {what} is empty")
    return text


def label_key(value: object) -> str | None:
    """A label value as the string it is matched by (JSON integers included); None for other JSON types."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def label_id(path: Path, line: int, value: object, ids: dict[str, int]) -> int:
    key = label_key(value)
    if key is None:
        raise DataError(f"{path}, line {line}: a label must be a string or an integer, got {value!r}")
    if not key:
        raise DataError(f"{path}, line {line}: the label is empty")
    if key not in ids:
        allowed = ", ".join(repr(k) for k in ids)
        raise DataError(f"{path}, line {line}: label {value!r} is not one of: {allowed}")
    return ids[key]


def shared_examples(root: Path, folder: str, filename: str, text_column: str, pair_column: str | None,
                    label_column: str, ids: dict[str, int]) -> list[Example]:
    """The checked examples of a built-in task's file in the shared data folder."""
    path = shared_file(root, folder, filename)
    columns = tuple(c for c in (text_column, pair_column, label_column) if c is not None)
    return examples_of(path, read_records(path, columns), text_column, pair_column, label_column, ids)


def examples_of(
    path: Path,
    records: list[Record],
    text_column: str,
    pair_column: str | None,
    label_column: str,
    ids: dict[str, int],
    clean: Callable[[str], str] = str.strip,
) -> list[Example]:
    """The checked examples of ``records`` read from ``path``."""
    return [
        Example(
            text=text_of(path, line, rec[text_column], f"text column {text_column!r}", clean),
            label=label_id(path, line, rec[label_column], ids),
            text_pair=None
            if pair_column is None
            else text_of(path, line, rec[pair_column], f"text pair column {pair_column!r}", clean),
        )
        for line, rec in records
    ]
