"""``a2t``: A2T (Yoo and Qi, 2021), adversarial training on real texts from a cheap gradient-guided word attack,
after ``clean_epochs`` epochs of clean cross-entropy alone (A2T's ``num_clean_epochs`` 1).

A2T attacks the training set once per epoch, in a random order, until it has successful adversarial examples for a
share of it (``num_train_adv_examples`` 0.2), and trains that epoch on the clean examples and those, each weighted
1 (its ``alpha``) in the mean cross-entropy. Here each batch of B does the same on its own scale: its rows are
attacked in a seeded random order until ceil(share x B) attacks have changed the prediction, and the loss is
(sum CE(x) + alpha x sum CE(x' of those)) / (B + their number). The method always uses its own adversary; the
``a2t`` adversary also serves other methods (``--adversary a2t``), which get an x' for every row.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from rift.adversaries.a2t import A2TAdversary, A2TAdversaryOptions
from rift.adversaries.base import encode_texts
from rift.config import option
from rift.data.batching import EncodedExample, model_inputs
from rift.models import classify
from rift.objectives.adversarial import ADVERSARIAL_WEIGHT_HELP
from rift.objectives.base import Objective


@dataclass
class A2TOptions(A2TAdversaryOptions):
    adversarial_weight: float = option(1.0, ADVERSARIAL_WEIGHT_HELP, at_least=0)
    clean_epochs: int = option(1, "a2t: epochs of clean cross-entropy alone before the adversary starts", at_least=0)
    a2t_adversarial_share: float = option(0.2, "a2t: successful adversarial examples added to each batch, as a share "
                                               "of its size (A2T's num_train_adv_examples 0.2 of the training set per "
                                               "epoch)", above=0, at_most=1)


class A2TObjective(Objective):
    name = "a2t"
    description = ("A2T: cross-entropy on clean inputs and on real adversarial texts from a gradient-ranked greedy "
                   "word attack changing at most 10% of the words, after a first clean epoch (Yoo and Qi 2021)")
    Options = A2TOptions
    own_adversary = A2TAdversary.name

    def __init__(self, args):
        super().__init__(args)
        self.adversary = A2TAdversary(args)
        self.current_epoch = lambda: 0.0

    def setup(self, context) -> None:
        self.adversary.setup(context)
        self.adversary.log_coverage()
        self.current_epoch = context.current_epoch

    def collate(self, items: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
        return self.adversary.collate(items, super().collate(items, pad_token_id))

    # the share of the batch that got an adversarial example: a measurement, not a part of the loss
    measured_terms: ClassVar[frozenset[str]] = frozenset({"adversarial_share"})

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(classify(model, **model_inputs(batch)).logits.float(), batch["labels"], reduction="none")
        size = len(ce)
        if self.current_epoch() < self.args.clean_epochs:  # x' is not searched for at all
            zero = torch.zeros_like(ce.mean())
            return {"loss": ce.mean(), "ce": ce.mean(), "adv_ce": zero, "adversarial_share": zero}
        indices = batch["index"].tolist()
        order = list(range(size))
        random.Random(f"a2t {self.args.seed} {indices}").shuffle(order)  # the same for a resumed run
        rows, examples = self.adversary.successful_examples(model, batch, math.ceil(self.args.a2t_adversarial_share * size),
                                                            order)
        adv_ce = torch.zeros_like(ce.sum())
        if rows:
            inputs = encode_texts(self.adversary.tokenizer, examples, self.args.max_length, batch["input_ids"].device)
            adv_ce = F.cross_entropy(classify(model, **inputs).logits.float(), batch["labels"][rows], reduction="sum")
        total = size + len(rows)
        return {"loss": (ce.sum() + self.args.adversarial_weight * adv_ce) / total, "ce": ce.sum() / total,
                "adv_ce": self.args.adversarial_weight * adv_ce / total,
                "adversarial_share": torch.tensor(len(rows) / size, device=ce.device)}
