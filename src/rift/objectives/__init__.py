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

# Named sets of hyper-parameters for ``--preset``; explicit flags override them. imdb and snli are the paper's
# BERT-base settings (METHOD.md section 3); cpu is a small-scale setting for SST-2 / MR with MiniLM on 2 CPU cores,
# documented in docs/METHOD_NOTES.md; study is the full-surface setting of docs/RESULTS.md's study of issue 16:
# the discrete adversary, class-balanced batches for every method, at a scale one session of 2 cores can train
# and attack.
_PAPER = dict(learning_rate=2e-5, weight_decay=2e-4, epochs=20, warmup_ratio=0.1, tau=0.2, ascc_steps=10,
              ascc_learning_rate=1.0, ascc_sparsity_weight=15.0, max_substitutes=8)
PRESETS: dict[str, dict] = {
    "imdb": _PAPER | dict(beta=10.0, alpha=0.1, batch_size=32, max_length=300),
    "snli": _PAPER | dict(beta=5.0, alpha=0.7, batch_size=120, max_length=80),
    "cpu": dict(max_train_examples=8000, max_length=64, batch_size=32, epochs=2, learning_rate=1e-4,
                mixed_precision="bf16", warmup_ratio=0.1, beta=5.0, alpha=0.1, tau=0.2, ascc_steps=5,
                ascc_objective="ce", ascc_learning_rate=1.0, ascc_sparsity_weight=15.0, max_substitutes=8),
    "study": dict(max_train_examples=2000, max_length=64, batch_size=32, epochs=2, learning_rate=1e-4,
                  mixed_precision="no", warmup_ratio=0.1, beta=5.0, alpha=0.1, tau=0.2, class_balanced=True,
                  adversary="discrete", adversary_candidates=32, adversary_query_budget=48, max_substitutes=8),
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


__all__ = ["OBJECTIVES", "PRESETS", "Objective", "build_objective", "unused_options", "used_options"]
