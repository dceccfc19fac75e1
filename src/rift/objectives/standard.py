from __future__ import annotations

import torch
import torch.nn.functional as F

from rift.models import classify
from rift.objectives.base import Objective
from rift.data.batching import model_inputs


class StandardObjective(Objective):
    """Plain fine-tuning: cross-entropy on clean inputs."""

    name = "standard"
    description = "standard fine-tuning (cross-entropy on clean inputs)"

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        logits = classify(model, **model_inputs(batch)).logits
        ce = F.cross_entropy(logits, batch["labels"])
        return {"loss": ce, "ce": ce}
