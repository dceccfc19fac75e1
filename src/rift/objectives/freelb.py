"""``freelb``: FreeLB (Zhu et al., ICLR 2020), adversarial training that accumulates the parameters' gradient over
the K ascent steps of a word-embedding perturbation, and ``freelb++``, its unbounded, longer variant of
TextDefender (Li et al. 2021).

The perturbation moves as PGD's does (``rift.objectives.pgd``: a random start scaled per example, steps along the
per-example L2-normalised gradient, projection onto the L2 ball of ``adv_max_norm``), but the model trains on every
iterate: the loss is the mean over k = 0..K-1 of CE(f(e(x) + delta_k), y), so that one optimiser step takes the
average of the K gradients, as the reference's K backward passes of loss / K do (the last iterate is not moved
again). docs/METHOD_NOTES.md says where this follows the reference and where it differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift.config import option
from rift.data.batching import model_inputs
from rift.models import classify, input_embeddings
from rift.objectives.base import Objective
from rift.objectives.pgd import (
    INIT_HELP,
    MAX_NORM_HELP,
    STEP_SIZE_HELP,
    STEPS_HELP,
    ascent_step,
    initial_perturbation,
)


@dataclass
class FreeLBOptions:
    adv_steps: int = option(3, STEPS_HELP, at_least=1)
    adv_step_size: float = option(0.1, STEP_SIZE_HELP, above=0)
    adv_init_magnitude: float = option(1.0, INIT_HELP, at_least=0)
    adv_max_norm: float = option(0.6, MAX_NORM_HELP, at_least=0)


@dataclass
class FreeLBPlusPlusOptions(FreeLBOptions):
    adv_steps: int = option(10, STEPS_HELP, at_least=1)
    adv_max_norm: float = option(0.0, MAX_NORM_HELP, at_least=0)


class FreeLBObjective(Objective):
    name = "freelb"
    description = ("FreeLB: cross-entropy averaged over the K iterates of a word-embedding perturbation found by "
                   "normalised gradient ascent, one optimiser step for all of them (Zhu et al. 2020)")
    Options = FreeLBOptions

    def iterate(self, model, embedded: torch.Tensor, inputs: dict, batch, mask: torch.Tensor, delta: torch.Tensor,
                last: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The terms of one iterate, on ``embedded + delta``, and the gradient on ``delta`` that moves it (None for
        the last iterate, which is trained on, not moved). InfoBERT adds its regularisers here."""
        ce = F.cross_entropy(classify(model, inputs_embeds=embedded + delta, **inputs).logits, batch["labels"])
        return {"adversarial_ce": ce}, None if last else torch.autograd.grad(ce, delta, retain_graph=True)[0]

    def combine(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss and its logged terms from each term's mean over the iterates."""
        return {"loss": terms["adversarial_ce"]} | terms

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        inputs = model_inputs(batch)
        ids = inputs.pop("input_ids")
        embeddings = input_embeddings(model)
        mask = inputs["attention_mask"].to(embeddings.weight.dtype).unsqueeze(-1)  # real tokens only
        delta = initial_perturbation(embeddings(ids).detach(), mask, self.args.adv_init_magnitude)
        iterates = []
        for step in range(self.args.adv_steps):
            delta.requires_grad_(True)
            last = step == self.args.adv_steps - 1
            terms, gradient = self.iterate(model, embeddings(ids), inputs, batch, mask, delta, last)
            iterates.append(terms)
            if not last:
                delta = ascent_step(delta.detach(), gradient * mask, self.args.adv_step_size, self.args.adv_max_norm)
        return self.combine({name: torch.stack([terms[name] for terms in iterates]).mean() for name in iterates[0]})


class FreeLBPlusPlusObjective(FreeLBObjective):
    name = "freelb++"
    description = ("FreeLB++: FreeLB with no bound on the perturbation and 10 ascent steps (Li et al. 2021, "
                   "TextDefender)")
    Options = FreeLBPlusPlusOptions
