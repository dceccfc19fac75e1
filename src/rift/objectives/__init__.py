"""Training objectives, selected with ``rift train --method NAME``."""

from __future__ import annotations

from rift.objectives.base import Objective
from rift.registry import Components, load

# every registered objective by name (rift.registry), each imported when first looked up
OBJECTIVES = Components("objective")


def build_objective(args) -> Objective:
    return load("objective", args.method)(args)


__all__ = ["OBJECTIVES", "Objective", "build_objective"]
