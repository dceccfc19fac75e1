"""Training objectives, selected with ``rift train --method NAME``."""

from __future__ import annotations

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

# Named sets of hyper-parameters for ``--preset``; explicit flags override them. imdb and snli are the paper's
# BERT-base settings (METHOD.md section 3); cpu is a small-scale setting for SST-2 / MR with MiniLM on 2 CPU cores,
# documented in docs/METHOD_NOTES.md.
_PAPER = dict(learning_rate=2e-5, weight_decay=2e-4, epochs=20, warmup_ratio=0.1, tau=0.2, ascc_steps=10,
              ascc_learning_rate=1.0, ascc_sparsity_weight=15.0, max_substitutes=8)
PRESETS: dict[str, dict] = {
    "imdb": _PAPER | dict(beta=10.0, alpha=0.1, batch_size=32, max_length=300),
    "snli": _PAPER | dict(beta=5.0, alpha=0.7, batch_size=120, max_length=80),
    "cpu": dict(max_train_examples=8000, max_length=64, batch_size=32, epochs=2, learning_rate=1e-4,
                mixed_precision="bf16", warmup_ratio=0.1, beta=5.0, alpha=0.1, tau=0.2, ascc_steps=5,
                ascc_objective="ce", ascc_learning_rate=1.0, ascc_sparsity_weight=15.0, max_substitutes=8),
}


def unused_options(method: str) -> set[str]:
    """Options of other objectives that ``method``'s objective never reads (none for an unknown method)."""
    if method not in OBJECTIVES:
        return set()
    return set().union(*(cls.options for cls in OBJECTIVES.values())) - OBJECTIVES[method].options


def build_objective(args) -> Objective:
    try:
        cls = OBJECTIVES[args.method]
    except KeyError:
        raise RiftError(f"unknown method {args.method!r}; choose from {', '.join(OBJECTIVES)}") from None
    return cls(args)


__all__ = ["OBJECTIVES", "PRESETS", "Objective", "build_objective", "unused_options"]
