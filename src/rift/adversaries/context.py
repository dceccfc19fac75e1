"""What an objective and its adversary see of the run that trains with them.

``Objective.setup`` and ``Adversary.setup`` receive a ``TrainingContext``, not a trainer, so that objectives and
adversaries never import the training loop (``rift.RobustTrainer``) and can be set up by hand in a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from rift.data import Example
from rift.data.batching import EncodedExample


@dataclass
class TrainingContext:
    model: nn.Module  # the classifier, unwrapped, before training starts
    tokenizer: Any
    num_labels: int
    train_examples: Sequence[Example]
    train_items: Sequence[EncodedExample]  # the training examples encoded; item.index is the example's position
    device: torch.device
    log: Callable[[str], None]  # a message for the user (main process only)
    current_step: Callable[[], int]  # optimiser steps taken so far
    # epochs trained so far, fractional within an epoch (the Trainer's state.epoch); a step of the second epoch
    # reads at least 1
    current_epoch: Callable[[], float] = lambda: 0.0
