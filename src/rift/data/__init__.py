"""Datasets as lists of labelled examples: the built-in benchmark tasks and user CSV/TSV/JSON-lines files."""

from rift.data.examples import DataError, Example, TaskData
from rift.data.splits import stratified_split, stratified_subset
from rift.data.tasks import TASK_NAMES, load_task, resolve_data_dir

__all__ = [
    "TASK_NAMES",
    "DataError",
    "Example",
    "TaskData",
    "load_task",
    "resolve_data_dir",
    "stratified_split",
    "stratified_subset",
]
