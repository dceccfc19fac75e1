"""Adversarial fine-tuning, and the anti-forgetting baselines built on it.

``ascc`` is the paper's adversarial-training baseline: CE(f(x), y) + beta * KL(adversarial || clean), the
"TRADES-style" objective of the authors' scripts, with x' from the run's adversary (``rift.adversaries``: the
paper's token-level ASCC by default; the objective keeps the paper's name). ``--adversarial-weight w`` adds
w * CE(f(x'), y), the adversarial cross-entropy of A2T (Yoo & Qi 2021) and Madry et al., which the authors' scripts
set to 0: the KL term only asks x' to be classified like x, this one asks it to be classified right. ``l2sp`` and ``mixout`` add the
classic ways of keeping a fine-tuned model near its pre-trained weights to the same adversarial objective, so that
they compare with RIFT on equal terms: the only difference is how forgetting is fought.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from rift.adversaries import build_adversary
from rift.attacks.ascc import divergence
from rift.config import option
from rift.errors import RiftError
from rift.models import ClassifierOutput, classify, unwrap
from rift.objectives.base import Objective
from rift.data.batching import EncodedExample, model_inputs


ADVERSARIAL_WEIGHT_HELP = ("weight of CE(f(x'), y), the cross-entropy of the label on the adversarial input (A2T's "
                           "and Madry's term; 0 = the authors' objective)")


@dataclass
class AdversarialOptions:
    beta: float = option(1.0, "weight of KL(adversarial || clean)", at_least=0)
    adversarial_weight: float = option(0.0, ADVERSARIAL_WEIGHT_HELP, at_least=0)


class ASCCObjective(Objective):
    """CE(f(x), y) + beta * KL(p(y|x') || p(y|x)) [+ adversarial_weight * CE(f(x'), y)], x' from the run's
    adversary (``--adversary``, ASCC by default)."""

    name = "ascc"
    description = ("adversarial fine-tuning: cross-entropy on clean inputs plus beta times the KL divergence between "
                   "the predictions on adversarial and clean inputs (Dong et al. 2021, ASCC)")
    Options = AdversarialOptions
    uses_adversary = True

    def __init__(self, args):
        super().__init__(args)
        self.beta = args.beta
        self.adversary = build_adversary(args)

    def setup(self, context) -> None:
        self.adversary.setup(context)
        self.adversary.log_coverage()

    def collate(self, items: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
        return self.adversary.collate(items, super().collate(items, pad_token_id))

    # ------------------------------------------------------------------------------------------------ hooks
    def student(self, model, return_pooled: bool = False, **inputs) -> ClassifierOutput:
        """The student's forward pass; ``mixout`` overrides it."""
        return classify(model, return_pooled=return_pooled, feature=self.feature, **inputs)

    def extra_terms(self, model, batch, clean: ClassifierOutput, adversarial: ClassifierOutput) -> dict[str, torch.Tensor]:
        """Further weighted loss terms ``{name: weighted value}``; ``rift`` and ``l2sp`` add theirs here."""
        return {}

    wants_clean_pooled = False
    wants_adversarial_pooled = False
    feature = "pooler"  # which pooled feature the passes return (rift: --feature)

    # ------------------------------------------------------------------------------------------------- loss
    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        clean = self.student(model, return_pooled=self.wants_clean_pooled, **model_inputs(batch))
        adversarial_input = self.adversary.perturb(model, batch)
        adversarial = self.student(model, return_pooled=self.wants_adversarial_pooled, **adversarial_input.inputs)
        ce = F.cross_entropy(clean.logits.float(), batch["labels"])
        kl = divergence(adversarial.logits, clean.logits)
        terms = {"ce": ce, "kl": kl}
        extra = self.extra_terms(model, batch, clean, adversarial)
        if self.args.adversarial_weight:
            extra["adv_ce"] = self.args.adversarial_weight * F.cross_entropy(adversarial.logits.float(), batch["labels"])
        terms["loss"] = ce + self.beta * kl + sum(extra.values())
        terms.update(extra)
        return terms

    def loss_parts(self, terms):
        parts = super().loss_parts(terms)
        parts["kl"] = self.beta * terms["kl"]  # logged unweighted, a part of the loss with its weight
        return parts


def anchor_pretrained(model, only: type[torch.nn.Module] | None = None) -> dict[int, torch.Tensor]:
    """Copies of the encoder's weights (the pre-trained part; the new head is excluded), keyed by the identity of
    the parameter, which survives distributed wrapping and device moves where names do not."""
    modules = unwrap(model).base_model.modules()
    return {
        id(p): p.detach().clone()
        for module in modules if only is None or isinstance(module, only)
        for name, p in module.named_parameters(recurse=False)
        if p.requires_grad and (only is None or name == "weight")
    }


@dataclass
class L2SPOptions(AdversarialOptions):
    l2sp_weight: float = option(0.01, "weight of the squared L2 distance to the pre-trained weights", at_least=0)


class L2SPObjective(ASCCObjective):
    """Adversarial training + L2-SP (Li et al. 2018): l2sp_weight * ||theta - theta_pretrained||^2 over the encoder."""

    name = "l2sp"
    description = "adversarial fine-tuning plus an L2 penalty towards the pre-trained weights (L2-SP)"
    Options = L2SPOptions

    def setup(self, context) -> None:
        super().setup(context)
        self.anchor = anchor_pretrained(context.model)

    def distance(self, model) -> torch.Tensor:
        return sum(((p - self.anchor[id(p)].to(p.device)) ** 2).sum()
                   for p in model.parameters() if id(p) in self.anchor)

    def extra_terms(self, model, batch, clean, adversarial):
        return {"l2sp": self.args.l2sp_weight * self.distance(model)}


@dataclass
class MixoutOptions(AdversarialOptions):
    mixout_probability: float = option(0.9, "probability of swapping a weight for its pre-trained value", at_least=0,
                                       at_most=1)


class MixoutObjective(ASCCObjective):
    """Adversarial training + Mixout (Lee et al. 2020): in training, every weight of the encoder's linear layers is
    swapped for its pre-trained value with probability p, rescaled so that its expectation is unchanged:
    W' = (M * W0 + (1 - M) * W - p * W0) / (1 - p), M ~ Bernoulli(p). One mask serves both forward passes of a step;
    the adversary's search (eval mode) and the saved model use the plain weights."""

    name = "mixout"
    description = "adversarial fine-tuning with Mixout towards the pre-trained weights"
    Options = MixoutOptions

    def setup(self, context) -> None:
        super().setup(context)
        if not 0.0 <= self.args.mixout_probability < 1.0:
            raise RiftError("--mixout-probability must be in [0, 1)")
        self.anchor = anchor_pretrained(context.model, only=torch.nn.Linear)
        self._mixed: dict[str, torch.Tensor] | None = None

    def loss(self, model, batch):
        p = self.args.mixout_probability
        self._mixed = {}
        for name, weight in model.named_parameters():
            if id(weight) not in self.anchor:
                continue
            anchor = self.anchor[id(weight)].to(weight.device)
            swap = torch.rand_like(weight) < p
            self._mixed[name] = (torch.where(swap, anchor, weight) - p * anchor) / (1 - p)
        try:
            return super().loss(model, batch)
        finally:
            self._mixed = None

    def student(self, model, return_pooled: bool = False, **inputs):
        parameters = self._mixed if model.training else None
        return classify(model, return_pooled=return_pooled, feature=self.feature, parameters=parameters, **inputs)
