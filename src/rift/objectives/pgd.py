"""``pgd``: PGD-K adversarial training on the word embeddings (Madry et al. 2018, as TextDefender runs it for text,
Li et al. 2021).

For each batch a perturbation delta of the word embeddings of the real tokens is found by K ascent steps on the
cross-entropy of the label: delta starts uniform in [-1, 1] per coordinate, scaled per example by
``adv_init_magnitude / sqrt(tokens * hidden)``; each step adds ``adv_step_size`` times the gradient divided by its
L2 norm over the whole example, and, with ``adv_max_norm`` > 0, projects delta back onto the L2 ball of that
radius. The model then trains on the cross-entropy of the perturbed input alone (the clean input is not trained
on, as in the reference). The ascent reads the model in its training mode (dropout on), as the reference does, and
leaves its parameters' gradients untouched. docs/METHOD_NOTES.md says where this follows the reference and where
it differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift.config import option
from rift.data.batching import model_inputs
from rift.models import classify, input_embeddings, unwrap
from rift.objectives.base import Objective


# what the options of the embedding-perturbation defences mean (pgd's and freelb's, each with its own defaults)
STEPS_HELP = "ascent steps on the word-embedding perturbation (K)"
STEP_SIZE_HELP = "size of each ascent step, along the gradient normalised to L2 norm 1 per example"
INIT_HELP = ("scale of the random initial perturbation: uniform in [-1, 1] per coordinate times this over "
             "sqrt(tokens x hidden) (0 = start at zero)")
MAX_NORM_HELP = "L2 radius per example that the perturbation is projected onto after each step (0 = unbounded)"


@dataclass
class PGDOptions:
    adv_steps: int = option(5, STEPS_HELP, at_least=1)
    adv_step_size: float = option(0.03, STEP_SIZE_HELP, above=0)
    adv_init_magnitude: float = option(0.05, INIT_HELP, at_least=0)
    adv_max_norm: float = option(0.0, MAX_NORM_HELP, at_least=0)


def per_example_norm(tensor: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each example's whole slice, shaped to broadcast over (batch, tokens, hidden)."""
    return tensor.flatten(1).norm(dim=1).view(-1, 1, 1)


def initial_perturbation(embedded: torch.Tensor, mask: torch.Tensor, magnitude: float) -> torch.Tensor:
    """The random start: uniform in [-1, 1] on the real tokens (``mask``, (batch, tokens, 1)), times ``magnitude``
    over sqrt(real tokens x hidden) per example; zero for magnitude 0."""
    if magnitude <= 0:
        return torch.zeros_like(embedded)
    dims = mask.sum(dim=(1, 2)) * embedded.size(-1)
    return torch.empty_like(embedded).uniform_(-1, 1) * mask * (magnitude / dims.sqrt()).view(-1, 1, 1)


def ascent_step(delta: torch.Tensor, gradient: torch.Tensor, step_size: float, max_norm: float) -> torch.Tensor:
    """``delta`` moved by ``step_size`` along ``gradient`` normalised to L2 norm 1 per example, then, for
    ``max_norm`` > 0, scaled back onto the L2 ball of that radius."""
    delta = delta + step_size * gradient / per_example_norm(gradient).clamp(min=1e-8)
    if max_norm > 0:
        norm = per_example_norm(delta)
        delta = delta * torch.where(norm > max_norm, max_norm / norm, 1.0)
    return delta


class PGDObjective(Objective):
    name = "pgd"
    description = ("PGD-K adversarial training on the word embeddings: cross-entropy on inputs whose embeddings are "
                   "perturbed by K normalised gradient-ascent steps (Madry et al. 2018)")
    Options = PGDOptions

    def perturbation(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """delta, (batch, tokens, hidden), zero at padding: K ascent steps on CE(f(e(x) + delta), y)."""
        inputs = model_inputs(batch)
        ids = inputs.pop("input_ids")
        embedded = input_embeddings(model)(ids).detach()
        mask = inputs["attention_mask"].to(embedded.dtype).unsqueeze(-1)  # real tokens only
        delta = initial_perturbation(embedded, mask, self.args.adv_init_magnitude)
        searched = unwrap(model)  # the ascent needs no distributed gradient synchronisation
        for _ in range(self.args.adv_steps):
            delta.requires_grad_(True)
            logits = classify(searched, inputs_embeds=embedded + delta, **inputs).logits
            (gradient,) = torch.autograd.grad(F.cross_entropy(logits, batch["labels"]), delta)
            delta = ascent_step(delta.detach(), gradient * mask, self.args.adv_step_size, self.args.adv_max_norm)
        return delta

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        delta = self.perturbation(model, batch)
        inputs = model_inputs(batch)
        ids = inputs.pop("input_ids")
        logits = classify(model, inputs_embeds=input_embeddings(model)(ids) + delta, **inputs).logits
        ce = F.cross_entropy(logits, batch["labels"])
        return {"loss": ce, "adversarial_ce": ce}
