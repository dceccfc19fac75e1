"""``infobert``: InfoBERT (Wang et al., ICLR 2021), FreeLB adversarial training on the word embeddings plus two
information-theoretic regularisers, as the authors' code (AI-secure/InfoBERT, ANLI) computes them.

At each of the K iterates delta_k of FreeLB's ascent (``rift.objectives.freelb``: the same random start and
normalised steps, here K 3, step 0.04, initial magnitude 0.08, no bound), on the perturbed input:

- the cross-entropy CE_k;
- the information bottleneck IB_k, the authors' parameter-free CLUB bound (their "CLUBv2") on the embedding layer's
  token states y (hidden state 0: word, position and segment embeddings after LayerNorm) of every real token of the
  batch: mean_i ||y_i - y_r(i)||^2 / 2, r(i) drawn uniformly with replacement among those tokens;
- the anchored feature NCE_k, an InfoNCE lower bound on the information between the local robust features and the
  global one. The local robust tokens of an example are those whose gradient norm (of CE_k + beta IB_k on delta_k)
  ranks in [low, high) among its real tokens, ascending: the tokens an attack moves the loss with a little, not the
  least nor the most (50% to 90%). Each selected token's embedding-layer state x is paired with its example's last
  [CLS] state z; the pairs are shuffled and cut into chunks of the batch size; per chunk of n pairs, with the
  critic T = Softplus(Linear(300, 1)(ReLU(Linear(2H, 300)([x, z])))),
  NCE = mean_i T(x_i, z_i) - mean_i logsumexp_j T(x_j, z_i) + log n, averaged over the chunks.

The loss is the mean over k of CE_k + beta IB_k - alpha NCE_k (the reference's K backward passes of each term over
K), so that one optimiser step takes the mean of the K iterates' gradients; the critic is trained by the same
optimiser, towards a tighter bound. docs/METHOD_NOTES.md says where this follows the reference and where it
differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rift.config import option
from rift.errors import RiftError
from rift.models import classify, unwrap
from rift.objectives.freelb import FreeLBObjective
from rift.objectives.pgd import INIT_HELP, MAX_NORM_HELP, STEP_SIZE_HELP, STEPS_HELP

CRITIC_HIDDEN = 300  # the reference's InfoNCE critic width


@dataclass
class InfoBERTOptions:
    adv_steps: int = option(3, STEPS_HELP, at_least=1)
    adv_step_size: float = option(0.04, STEP_SIZE_HELP, above=0)
    adv_init_magnitude: float = option(0.08, INIT_HELP, at_least=0)
    adv_max_norm: float = option(0.0, MAX_NORM_HELP, at_least=0)
    bottleneck_weight: float = option(5e-3, "weight (beta) of InfoBERT's information-bottleneck term, a CLUB upper "
                                            "bound on the embedding layer's token states", at_least=0)
    anchored_weight: float = option(5e-3, "weight (alpha) of InfoBERT's anchored-feature term, an InfoNCE lower "
                                          "bound between the local robust tokens and [CLS]", at_least=0)
    robust_rank_low: float = option(0.5, "InfoBERT's local robust tokens: the lowest gradient-norm rank kept, as a "
                                         "share of an example's tokens", at_least=0, at_most=1)
    robust_rank_high: float = option(0.9, "InfoBERT's local robust tokens: the rank they stop below, as a share of "
                                          "an example's tokens", at_least=0, at_most=1)


def club_upper_bound(tokens: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """The parameter-free CLUB bound of InfoBERT's code: mean_i ||tokens_i - tokens_partners[i]||^2 / 2."""
    return ((tokens - tokens[partners]) ** 2).sum(-1).mean() / 2


def local_robust_positions(gradient_norms: torch.Tensor, mask: torch.Tensor, low: float,
                           high: float) -> list[tuple[int, int]]:
    """(example, token) of every local robust token: per example, the real tokens (``mask``) whose gradient norm
    ranks in [ceil(n low), ceil(n high)) in ascending order, n the example's real tokens."""
    positions = []
    for example, (norms, real) in enumerate(zip(gradient_norms, mask.bool())):
        tokens = real.nonzero().flatten()
        n = len(tokens)
        ranked = tokens[torch.argsort(norms[tokens], stable=True)]
        positions += [(example, int(token)) for token in ranked[math.ceil(n * low):math.ceil(n * high)]]
    return positions


class InfoNCECritic(nn.Module):
    """T(x, z) = Softplus(w2 ReLU(W1 [x; z] + b1) + b2), the reference's critic."""

    def __init__(self, hidden: int):
        super().__init__()
        self.first = nn.Linear(2 * hidden, CRITIC_HIDDEN)
        self.last = nn.Linear(CRITIC_HIDDEN, 1)

    def forward(self, local: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """T(local_j, anchor_i) for every i, j: (n, n). The first layer applied to [x; z] is W_x x + W_z z + b, so
        each half is computed once per row instead of once per pair."""
        hidden = local.size(-1)
        weight_local, weight_anchor = self.first.weight[:, :hidden], self.first.weight[:, hidden:]
        mixed = (anchor @ weight_anchor.T + self.first.bias)[:, None, :] + (local @ weight_local.T)[None, :, :]
        return F.softplus(self.last(F.relu(mixed)).squeeze(-1))


def info_nce_lower_bound(critic: InfoNCECritic, local: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """mean_i T(x_i, z_i) - mean_i logsumexp_j T(x_j, z_i) + log n over n pairs (x_i, z_i)."""
    scores = critic(local, anchor)
    return scores.diagonal().mean() - scores.logsumexp(dim=1).mean() + math.log(len(local))


class InfoBERTObjective(FreeLBObjective):
    name = "infobert"
    description = ("InfoBERT: FreeLB adversarial training plus an information bottleneck on the embedding layer and "
                   "an InfoNCE term anchoring the local robust tokens to [CLS] (Wang et al. 2021)")
    Options = InfoBERTOptions
    measured_terms = frozenset({"anchored_nce", "bottleneck"})

    def __init__(self, args):
        super().__init__(args)
        if args.robust_rank_low >= args.robust_rank_high:
            raise RiftError(f"--robust-rank-low ({args.robust_rank_low:g}) must be below --robust-rank-high "
                            f"({args.robust_rank_high:g})")

    def setup(self, context) -> None:
        super().setup(context)
        self.critic = InfoNCECritic(unwrap(context.model).config.hidden_size)

    def anchored_nce(self, embedded: torch.Tensor, last: torch.Tensor, gradient: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
        """The InfoNCE bound between the local robust tokens' embedding-layer states and their examples' last [CLS]
        states, over chunks of the batch size; zero when fewer than two tokens are selected."""
        positions = local_robust_positions(gradient.norm(dim=-1), mask, self.args.robust_rank_low,
                                           self.args.robust_rank_high)
        if not positions:
            return embedded.new_zeros(())
        examples, tokens = (torch.tensor(column, device=embedded.device) for column in zip(*positions))
        order = torch.randperm(len(positions), device=embedded.device)
        local, anchor = embedded[examples, tokens][order], last[examples, 0][order]
        chunk = len(mask)
        # a last chunk of one pair would add a bound of exactly 0 (log 1 - log 1): chunks of two pairs or more
        bounds = [info_nce_lower_bound(self.critic, local[start:start + chunk], anchor[start:start + chunk])
                  for start in range(0, len(positions), chunk) if len(positions) - start > 1]
        return torch.stack(bounds).mean() if bounds else embedded.new_zeros(())

    def iterate(self, model, embedded: torch.Tensor, inputs: dict, batch, mask: torch.Tensor, delta: torch.Tensor,
                last: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        output = classify(model, inputs_embeds=embedded + delta, return_hidden_states=True, **inputs)
        states, top = output.hidden_states[0], output.hidden_states[-1]
        ce = F.cross_entropy(output.logits.float(), batch["labels"])
        real = inputs["attention_mask"]
        tokens = states[real.bool()]
        bottleneck = club_upper_bound(tokens, torch.randint(len(tokens), (len(tokens),), device=tokens.device))
        # the ascent and the token ranking read the gradient of the iterate's own loss, as the reference's do; the
        # last iterate's too, which ranks its tokens
        (gradient,) = torch.autograd.grad(ce + self.args.bottleneck_weight * bottleneck, delta, retain_graph=True)
        nce = self.anchored_nce(states, top, gradient * mask, real)
        return {"adversarial_ce": ce, "bottleneck": bottleneck, "anchored_nce": nce}, gradient

    def combine(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        beta, alpha = self.args.bottleneck_weight, self.args.anchored_weight
        ce, bottleneck, nce = terms["adversarial_ce"], terms["bottleneck"], terms["anchored_nce"]
        return {"loss": ce + beta * bottleneck - alpha * nce, "adversarial_ce": ce,
                "weighted_bottleneck": beta * bottleneck, "weighted_anchored_nce": -alpha * nce,
                "bottleneck": bottleneck.detach(), "anchored_nce": nce.detach()}
