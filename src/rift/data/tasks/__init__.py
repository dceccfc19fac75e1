"""Tasks: the built-in benchmark datasets read from the shared data folder (sst2, imdb, mr, snli, agnews), the
user's own files (``file``) and any task registered with ``rift.registry.register("task", ...)``; one module each."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from rift.config import build_config, owner_text
from rift.data.examples import DataError, Example, TaskData
from rift.data.splits import stratified_subset
from rift.data.tasks.base import SPLIT_SEED, SPLITS, Task, resolve_data_dir
from rift.errors import RiftError
from rift.registry import load, names


def task_names() -> tuple[str, ...]:
    return names("task")


def task_options(name: str, options: dict) -> object:
    """The options object of task ``name`` from ``options`` (checked as flags are); an option the task does not
    read is refused in one line, one given as None (not given) is left out."""
    cls = load("task", name)
    own = {f.name for f in dataclasses.fields(cls.Options)}
    for key, value in options.items():
        if key not in own and value is not None:
            owners = [f"--task {other}" for other in task_names()
                      if key in {f.name for f in dataclasses.fields(load("task", other).Options)}]
            flag = "--" + key.replace("_", "-")
            raise RiftError(f"{flag} is not read by --task {name}" + (f"; it is an option of {owner_text(owners)}"
                                                                       if owners else ""))
    return build_config(cls.Options, {k: v for k, v in options.items() if k in own}, check_paths=False)


def load_task(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    max_train_examples: int | None = None,
    max_dev_examples: int | None = None,
    max_test_examples: int | None = None,
    min_train_words: int | None = None,
    scored_split: str | None = None,
    log: Callable[[str], None] = print,
    **options,
) -> TaskData:
    """A task's train/dev/test examples; ``options`` are the task's own (task ``file``: ``train_file=...``,
    ``text_column=...``). ``seed`` only chooses the --max-*-examples subsets, never the dataset splits.
    ``min_train_words`` keeps only training examples of at least that many whitespace-separated words (both texts of
    a pair together), before the subset is drawn; dev and test are never filtered. ``scored_split`` (evaluation and
    attacks) names the only split that will be used: task 'file' then reads only its file when no training file is
    given."""
    # the numbers are checked before any file is read
    limits = dict(zip(SPLITS, (max_train_examples, max_dev_examples, max_test_examples)))
    for split, n in limits.items():
        if n is not None and n < 1:
            raise RiftError(f"max_{split}_examples must be at least 1, got {n}")
    if min_train_words is not None and min_train_words < 1:
        raise RiftError(f"min_train_words must be at least 1, got {min_train_words}")
    if name not in task_names():
        raise RiftError(f"unknown task {name!r}; choose one of: {', '.join(task_names())}")
    reader = load("task", name)(task_options(name, options))
    task = reader.read(data_dir, log=log, scored_split=scored_split)
    if sorted(task.splits) != sorted(SPLITS):
        raise RiftError(f"task {name!r} gave the splits {', '.join(task.splits)}; a task gives train, dev and test")
    only_scored = scored_split is not None and not task.splits["train"]  # only the scored split was read
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
        raise DataError(f"{reader.source()}: the train split needs examples of at least two classes, but has only: {found}")
    return task


def _with_min_words(examples: list[Example], min_words: int, log: Callable[[str], None]) -> list[Example]:
    kept = [e for e in examples if len(e.text.split()) + len((e.text_pair or "").split()) >= min_words]
    if not kept:
        raise DataError(f"no training example has at least {min_words} words (min_train_words)")
    log(f"train: {len(kept)} of {len(examples)} examples have at least {min_words} words")
    return kept


__all__ = ["SPLIT_SEED", "Task", "load_task", "resolve_data_dir", "task_names", "task_options"]
