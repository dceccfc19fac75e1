"""Training objectives, selected with ``rift train --method NAME``."""

from __future__ import annotations

from rift.adversaries import ADVERSARIES
from rift.errors import RiftError
from rift.objectives.adversarial import ASCCObjective, L2SPObjective, MixoutObjective
from rift.objectives.base import Objective
from rift.objectives.rift import (
    CleanRIFTObjective,
    RIFTObjective,
    UnconditionalRIFTObjective,
)
from rift.objectives.standard import StandardObjective

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (StandardObjective, ASCCObjective, RIFTObjective, UnconditionalRIFTObjective, CleanRIFTObjective,
                L2SPObjective, MixoutObjective)
}

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
    try:
        cls = OBJECTIVES[args.method]
    except KeyError:
        raise RiftError(f"unknown method {args.method!r}; choose from {', '.join(OBJECTIVES)}") from None
    return cls(args)


__all__ = ["OBJECTIVES", "Objective", "build_objective", "unused_options", "used_options"]
