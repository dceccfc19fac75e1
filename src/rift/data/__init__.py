"""Datasets as lists of labelled examples: the built-in benchmark tasks, user data files and registered tasks."""

from rift.data.examples import DataError, Example, TaskData
from rift.data.splits import stratified_split, stratified_subset
from rift.data.tasks import load_task, resolve_data_dir, task_names

__all__ = [
    "DataError",
    "Example",
    "TaskData",
    "load_task",
    "resolve_data_dir",
    "stratified_split",
    "stratified_subset",
    "task_names",
]
