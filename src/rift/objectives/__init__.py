"""Training objectives, selected with ``rift train --method NAME``."""

from __future__ import annotations

from rift.errors import RiftError
from rift.objectives.base import Objective
from rift.objectives.standard import StandardObjective

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (StandardObjective,)}

# named sets of hyper-parameters for ``--preset``; explicit flags override them
PRESETS: dict[str, dict] = {}


def build_objective(args) -> Objective:
    try:
        cls = OBJECTIVES[args.method]
    except KeyError:
        raise RiftError(f"unknown method {args.method!r}; choose from {', '.join(OBJECTIVES)}") from None
    return cls(args)


__all__ = ["OBJECTIVES", "PRESETS", "Objective", "build_objective"]
