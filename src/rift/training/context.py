"""What an objective and its adversary see of the run that trains with them.

``Objective.setup`` and ``Adversary.setup`` receive a ``TrainingContext``, not a trainer, so that the same objective
runs under rift's own loop (``rift.training.trainer.Trainer``) and under ``rift.RobustTrainer`` inside an ordinary
``transformers.Trainer`` script, and so that objectives never import a trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from rift.data import Example
from rift.training.batching import EncodedExample


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
