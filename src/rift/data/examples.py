"""The in-memory form of a classification dataset, shared by every task reader."""

from __future__ import annotations

from dataclasses import dataclass

from rift.errors import RiftError


class DataError(RiftError):
    """A problem with a data file, reported as ``<file>, line <n>: <what is wrong>``."""


@dataclass(frozen=True)
class Example:
    """One labelled text, or text pair (premise, hypothesis) for NLI."""

    text: str
    label: int
    text_pair: str | None = None


@dataclass
class TaskData:
    """A task's label names (index = label id) and its train/dev/test examples."""

    name: str
    label_names: list[str]
    splits: dict[str, list[Example]]

    @property
    def is_pair(self) -> bool:
        return any(e.text_pair is not None for split in self.splits.values() for e in split)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)
