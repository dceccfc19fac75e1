"""Training on randomised smoothing's copies, the part ``safer`` and ``ranmask`` share: cross-entropy on one random
copy of every example per step, drawn anew at each step, as both references train (no clean term). A text pair is
copied in its second text, the one attacks change. The model then predicts by a vote over copies, which its
checkpoint records (``rift.prediction``), and ``rift certify`` certifies that vote.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rift.models import classify
from rift.objectives.base import Objective
from rift.prediction import MaskVote, SubstitutionVote, record_prediction


class CopiesObjective(Objective):
    """Cross-entropy on one copy per example; a subclass says how a text is copied and how the model votes."""

    certifiable = True

    def copy(self, text: str, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def prediction(self) -> SubstitutionVote | MaskVote:
        raise NotImplementedError

    def setup(self, context) -> None:
        self.examples, self.tokenizer = context.train_examples, context.tokenizer
        record_prediction(context.model, self.prediction())

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        # the copies' generator is seeded from torch's, which the run seeds and its resume state restores
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        examples = [self.examples[index] for index in batch["index"].tolist()]
        copies = [(e.text, self.copy(e.text_pair, rng)) if e.text_pair is not None else (self.copy(e.text, rng), None)
                  for e in examples]
        pairs = [pair for _, pair in copies]
        encoded = self.tokenizer([text for text, _ in copies], pairs if pairs[0] is not None else None,
                                 truncation=True, max_length=self.args.max_length, padding=True, return_tensors="pt")
        device = batch["input_ids"].device
        logits = classify(model, **{k: v.to(device) for k, v in encoded.items()}).logits
        ce = F.cross_entropy(logits.float(), batch["labels"])
        return {"loss": ce, "ce": ce}
