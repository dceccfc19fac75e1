"""The training objective: the loss terms of one batch.

An objective is a ``torch.nn.Module`` so that it can own trainable parts (projection heads) and frozen state (a
teacher model, cached features). Those are training-time only: the trainer saves them in its resume state, never
in the Hugging Face checkpoint.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch import nn

from rift.config import NoOptions
from rift.data.batching import EncodedExample, collate
from rift.adversaries.context import TrainingContext


class Objective(nn.Module):
    name: ClassVar[str]
    # one line for people: the model card says how a model was trained with it
    description: ClassVar[str] = ""
    # the batches it gets unless --class-balanced says otherwise: RIFT's class-conditional InfoNCE wants the same
    # number of examples of every class in a batch
    class_balanced: ClassVar[bool] = False
    # its own rift train options (flags and YAML keys), a dataclass of rift.config.option fields
    Options: ClassVar[type] = NoOptions
    # whether it trains on an adversary's x' (and so reads the options of --adversary)
    uses_adversary: ClassVar[bool] = False
    # the adversary it always trains against, taking no --adversary (a2t's): what its model's attacks are compared to
    own_adversary: ClassVar[str | None] = None
    # whether its model predicts by a vote over random copies, which rift certify certifies (safer, ranmask)
    certifiable: ClassVar[bool] = False

    def __init__(self, args=None):
        """``args``: the run's options, the objective's own among them (None for an objective built by hand that
        reads none)."""
        super().__init__()
        self.args = args

    def setup(self, context: TrainingContext) -> None:
        """Called once before training, after the model is built (e.g. to freeze a teacher copy)."""

    def collate(self, items: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
        """The batch the ``loss`` receives; objectives that need more per example (substitutes) extend it."""
        return collate(items, pad_token_id)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": total, <term>: value, ...}``; every term is logged."""
        raise NotImplementedError

    # terms that are logged but are not part of the loss (measurements, such as RIFT's InfoNCE bound)
    measured_terms: ClassVar[frozenset[str]] = frozenset()

    def loss_parts(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weighted parts whose sum is ``terms["loss"]``, by name: what the training diagnostics take the
        gradient of, one part at a time. Terms are logged unweighted where an objective says so (``ascc``'s KL)."""
        return {name: value for name, value in terms.items() if name != "loss" and name not in self.measured_terms}

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # called through ``objective(model, batch)`` so that a distributed wrapper around the objective (needed
        # when it owns trainable heads) sees the forward pass and synchronises their gradients
        return self.loss(model, batch)
