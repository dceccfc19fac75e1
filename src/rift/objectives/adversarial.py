"""Adversarial fine-tuning with the ASCC adversary, and the anti-forgetting baselines built on it.

``ascc`` is the paper's adversarial-training baseline: CE(f(x), y) + beta * KL(adversarial || clean), the
"TRADES-style" objective of the authors' scripts. ``l2sp`` and ``mixout`` add the classic ways of keeping a
fine-tuned model near its pre-trained weights to the same adversarial objective, so that they compare with RIFT
on equal terms: the only difference is how forgetting is fought.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from rift.attacks.ascc import ASCCAdversary, adversarial_embeddings, divergence
from rift.data import resolve_data_dir
from rift.errors import RiftError
from rift.models import ClassifierOutput, classify, unwrap
from rift.objectives.base import Objective
from rift.substitutions import build_substitution_source
from rift.substitutions.tokens import (
    collate_substitutions,
    coverage_report,
    token_substitutions,
)
from rift.training.batching import EncodedExample, model_inputs


class ASCCObjective(Objective):
    name = "ascc"
    options = frozenset({"beta", "synonyms", "max_substitutes", "ascc_steps", "ascc_learning_rate",
                         "ascc_sparsity_weight", "ascc_objective"})

    def __init__(self, args):
        super().__init__()
        self.args = args
        self.beta = args.beta
        self.adversary = ASCCAdversary(
            steps=args.ascc_steps, learning_rate=args.ascc_learning_rate,
            sparsity_weight=args.ascc_sparsity_weight, objective=args.ascc_objective,
        )
        self.substitutions: dict[int, object] = {}

    def setup(self, trainer) -> None:
        source = build_substitution_source(self.args.synonyms, resolve_data_dir(self.args.data_dir))
        self.substitutions = {
            item.index: token_substitutions(item.alignment, trainer.tokenizer, source, self.args.max_substitutes)
            for item in trainer.encoded["train"]
        }
        self.coverage = coverage_report(list(self.substitutions.values()))
        trainer._log(
            "adversary's search space: {words_represented} of {words_with_substitutes} words with substitutes are "
            "single tokens with single-token substitutes ({share_represented:.1%}); {mean_substitutes_per_position:.1f} "
            "substitutes per position".format(**self.coverage)
        )

    def collate(self, items: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(items, pad_token_id)
        ids, mask = collate_substitutions(
            [self.substitutions[item.index] for item in items], batch["input_ids"].shape[1], self.args.max_substitutes
        )
        batch["substitute_ids"], batch["substitute_mask"] = ids, mask
        return batch

    # ------------------------------------------------------------------------------------------------ hooks
    def student(self, model, return_pooled: bool = False, **inputs) -> ClassifierOutput:
        """The student's forward pass; ``mixout`` overrides it."""
        return classify(model, return_pooled=return_pooled, **inputs)

    def extra_terms(self, model, batch, clean: ClassifierOutput, adversarial: ClassifierOutput) -> dict[str, torch.Tensor]:
        """Further weighted loss terms ``{name: weighted value}``; ``rift`` and ``l2sp`` add theirs here."""
        return {}

    wants_clean_pooled = False
    wants_adversarial_pooled = False

    # ------------------------------------------------------------------------------------------------- loss
    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        inputs = model_inputs(batch)
        clean = self.student(model, return_pooled=self.wants_clean_pooled, **inputs)
        weights = self.adversary.find_weights(
            model, batch["substitute_ids"], batch["substitute_mask"], batch["attention_mask"],
            batch.get("token_type_ids"), clean_logits=clean.logits.detach(), labels=batch["labels"],
        )
        embeds = adversarial_embeddings(model, batch["substitute_ids"], weights)
        adversarial = self.student(
            model, return_pooled=self.wants_adversarial_pooled, inputs_embeds=embeds,
            attention_mask=batch["attention_mask"], token_type_ids=batch.get("token_type_ids"),
        )
        ce = F.cross_entropy(clean.logits.float(), batch["labels"])
        kl = divergence(adversarial.logits, clean.logits)
        terms = {"ce": ce, "kl": kl}
        extra = self.extra_terms(model, batch, clean, adversarial)
        terms["loss"] = ce + self.beta * kl + sum(extra.values())
        terms.update(extra)
        return terms


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


class L2SPObjective(ASCCObjective):
    """Adversarial training + L2-SP (Li et al. 2018): l2sp_weight * ||theta - theta_pretrained||^2 over the encoder."""

    name = "l2sp"
    options = ASCCObjective.options | {"l2sp_weight"}

    def setup(self, trainer) -> None:
        super().setup(trainer)
        self.anchor = anchor_pretrained(trainer.model)

    def distance(self, model) -> torch.Tensor:
        return sum(((p - self.anchor[id(p)].to(p.device)) ** 2).sum()
                   for p in model.parameters() if id(p) in self.anchor)

    def extra_terms(self, model, batch, clean, adversarial):
        return {"l2sp": self.args.l2sp_weight * self.distance(model)}


class MixoutObjective(ASCCObjective):
    """Adversarial training + Mixout (Lee et al. 2020): in training, every weight of the encoder's linear layers is
    swapped for its pre-trained value with probability p, rescaled so that its expectation is unchanged:
    W' = (M * W0 + (1 - M) * W - p * W0) / (1 - p), M ~ Bernoulli(p). One mask serves both forward passes of a step;
    the adversary's search (eval mode) and the saved model use the plain weights."""

    name = "mixout"
    options = ASCCObjective.options | {"mixout_probability"}

    def setup(self, trainer) -> None:
        super().setup(trainer)
        if not 0.0 <= self.args.mixout_probability < 1.0:
            raise RiftError("--mixout-probability must be in [0, 1)")
        self.anchor = anchor_pretrained(trainer.model, only=torch.nn.Linear)
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
        return classify(model, return_pooled=return_pooled, parameters=parameters, **inputs)
