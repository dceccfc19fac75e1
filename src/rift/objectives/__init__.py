"""Training objectives, selected with ``rift train --method NAME``."""

from __future__ import annotations

from rift.adversaries import ADVERSARIES
from rift.objectives.base import Objective
from rift.registry import Components, load

# every registered objective by name (rift.registry), each imported when first looked up
OBJECTIVES = Components("objective")


def used_options(method: str, adversary: str) -> set[str]:
    """The objective-specific and adversary-specific options that ``method`` with ``adversary`` reads."""
    cls = OBJECTIVES[method]
    if not cls.uses_adversary:
        return set(cls.options)
    return set(cls.options) | (ADVERSARIES[adversary].options if adversary in ADVERSARIES else set())


def unused_options(method: str, adversary: str) -> set[str]:
    """Options of other objectives and adversaries that ``method`` with ``adversary`` never reads (none for an
    unknown method)."""
    if method not in OBJECTIVES:
        return set()
    every = set().union(*(cls.options for cls in OBJECTIVES.values()), *(cls.options for cls in ADVERSARIES.values()))
    return every - used_options(method, adversary)


def build_objective(args) -> Objective:
    return load("objective", args.method)(args)


__all__ = ["OBJECTIVES", "Objective", "build_objective", "unused_options", "used_options"]
