"""``a2t``: A2T (Yoo and Qi, 2021), adversarial training on real texts from a cheap gradient-guided word attack:
CE(f(x), y) + adversarial_weight * CE(f(x'), y), x' from the ``a2t`` adversary (``rift.adversaries.a2t``), after
``clean_epochs`` epochs of clean cross-entropy alone (A2T's ``num_clean_epochs`` 1).

A2T adds the adversarial examples of each attack epoch to the training set, so that an epoch trains on clean and
adversarial examples with weight 1 each; here every batch trains on both, x' searched for it, with the same
weights. The method always uses its own adversary; the ``a2t`` adversary also serves other methods
(``--adversary a2t``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift.adversaries.a2t import A2TAdversary, A2TAdversaryOptions
from rift.config import option
from rift.data.batching import EncodedExample, model_inputs
from rift.models import classify
from rift.objectives.adversarial import ADVERSARIAL_WEIGHT_HELP
from rift.objectives.base import Objective


@dataclass
class A2TOptions(A2TAdversaryOptions):
    adversarial_weight: float = option(1.0, ADVERSARIAL_WEIGHT_HELP, at_least=0)
    clean_epochs: int = option(1, "a2t: epochs of clean cross-entropy alone before the adversary starts", at_least=0)


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

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(classify(model, **model_inputs(batch)).logits.float(), batch["labels"])
        if self.current_epoch() < self.args.clean_epochs:  # x' is not searched for at all
            return {"loss": ce, "ce": ce, "adv_ce": torch.zeros_like(ce)}
        adversarial = classify(model, **self.adversary.perturb(model, batch).inputs).logits
        adv_ce = self.args.adversarial_weight * F.cross_entropy(adversarial.float(), batch["labels"])
        return {"loss": ce + adv_ce, "ce": ce, "adv_ce": adv_ce}
