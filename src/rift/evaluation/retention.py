"""How much of the pre-trained encoder's representation a fine-tuned model keeps: RIFT's central claim, measured.

Both numbers compare the encoder's own sentence features, the mean of its last hidden states over the real tokens
(``FEATURE``), of the fine-tuned model and of the pre-trained model on the same held-out texts. Not the pooler's
output that a BERT head reads: the pre-trained pooler of a sentence encoder such as all-MiniLM-L6-v2 was never
trained (bias exactly 0, weights of standard deviation 0.009), so its output says little about what the
pre-trained encoder knew.

The probe also reports the CKA of features that a training loss may not optimise, so that retention is not only
measured on the feature RIFT's term was asked to keep: the first token's last hidden state (``cka_cls``), what a
BERT-style head reads (``cka_pooler``), and the token states of every layer (``cka_layer_K``; 0 is the embeddings).

- **Linear CKA** (Kornblith et al. 2019), the feature-space formula on centred features X (n x d1), Y (n x d2):
  ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``. 1 for features equal up to an orthogonal transform and an
  isotropic scaling, near 0 for unrelated ones.
- **An InfoNCE estimate of the mutual information** I(fine-tuned; pre-trained), in nats. A linear map from the
  fine-tuned to the pre-trained features is fitted by ridge least squares on the even-numbered examples (both
  feature sets centred with that half's means; ridge ``RIDGE`` times the mean eigenvalue of X^T X, so the
  penalty follows the features' scale); on the odd-numbered half the bound ``I >= log(N) - L_NCE`` is taken,
  with L_NCE the InfoNCE loss of the mapped features against the pre-trained ones under a cosine-similarity
  critic at temperature ``TEMPERATURE`` = 0.1. Choices and why: a linear map, so that the estimate measures
  information the features still hold in a linearly readable form (what a classification head can use) rather
  than what a trained critic could dig out; a fixed, untrained critic (cosine) on held-out examples, so that the
  number is an honest lower bound and not fitted to the pairs it scores; centring, because pooled features share
  a large common direction that would make every cosine similarity near 1; temperature 0.1, sharp enough that
  a bound near its ceiling log(N) is reachable with features of a few hundred dimensions (RIFT's training loss
  uses 0.2 with trained heads). The bound cannot exceed log(N), so compare numbers measured on the same N (and
  the same model size): with fewer fitting examples than feature dimensions the map is only partly determined,
  and even identical features score below log(N) (MiniLM, 256 examples: about log(N) - 0.05). It can be negative
  when the features are unrelated.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from rift.models import classify, eval_mode, unwrap
from rift.objectives.rift import info_nce
from rift.data.batching import EncodedExample, collate, length_sorted_batches, model_inputs

TEMPERATURE = 0.1
RIDGE = 0.1
FEATURE = "mean"
MAX_TOKENS = 4096  # token states compared per layer: bounded memory for any model size


@torch.inference_mode()
def pooled_features(model, items: Sequence[EncodedExample], pad_token_id: int, batch_size: int) -> torch.Tensor:
    """The sentence features (``FEATURE``) of ``items`` (in their order) as a float CPU tensor, in eval mode."""
    model = unwrap(model)
    device = next(model.parameters()).device
    batches = length_sorted_batches(items, batch_size)
    features = []
    with eval_mode(model):
        for positions in batches:
            batch = collate([items[i] for i in positions], pad_token_id)
            inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
            features.append(classify(model, return_pooled=True, feature=FEATURE, **inputs).pooled.float().cpu())
    order = torch.tensor([i for positions in batches for i in positions])
    return torch.cat(features)[order.argsort()]


def _centred(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x - x.mean(0)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = _centred(x), _centred(y)
    return ((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())).item()


def infonce_mutual_information(x: torch.Tensor, y: torch.Tensor) -> float:
    """Lower bound on I(x; y) in nats (module docstring): ridge map x -> y on the even rows, InfoNCE on the odd."""
    x, y = x.double(), y.double()
    fit_x, fit_y, test_x, test_y = x[0::2], y[0::2], x[1::2], y[1::2]
    x_mean, y_mean = fit_x.mean(0), fit_y.mean(0)
    fit_x, fit_y = fit_x - x_mean, fit_y - y_mean
    gram = fit_x.T @ fit_x
    ridge = RIDGE * gram.diagonal().mean().clamp_min(1e-12)
    weights = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype), fit_x.T @ fit_y)
    mapped = (test_x - x_mean) @ weights
    return math.log(len(test_x)) - info_nce(mapped, test_y - y_mean, TEMPERATURE).item()


def retention_scores(features: torch.Tensor, pretrained_features: torch.Tensor) -> dict[str, float]:
    return {"cka": linear_cka(features, pretrained_features),
            "mi_nce": infonce_mutual_information(features, pretrained_features)}


@torch.inference_mode()
def representations(model, items: Sequence[EncodedExample], pad_token_id: int, batch_size: int,
                    max_tokens: int = MAX_TOKENS) -> dict[str, torch.Tensor]:
    """Every feature the probe compares, from one forward pass per batch, as float CPU tensors in the items' order:
    ``mean`` (``FEATURE``, as ``pooled_features`` computes it, on the same batches); ``cls``, the first token's last
    hidden state; ``pooler``, what a BERT-style head reads (the pooler output, else the first token); and
    ``layer_K``, the token states of every layer K (0 = the embeddings) at the first ``max_tokens`` real tokens of
    the items in their order (the same tokens for every model: the inputs are the same)."""
    model = unwrap(model)
    device = next(model.parameters()).device
    lengths = [len(item.alignment.input_ids) for item in items]
    offsets = [sum(lengths[:i]) for i in range(len(items))]  # where each item's tokens start in the items' order
    kept = [max(0, min(length, max_tokens - offset)) for length, offset in zip(lengths, offsets)]
    found: dict[str, torch.Tensor] = {}
    with eval_mode(model):
        for positions in length_sorted_batches(items, batch_size):
            batch = collate([items[i] for i in positions], pad_token_id)
            inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
            output = model.base_model(**inputs, output_hidden_states=True)
            last = output.last_hidden_state
            weights = inputs["attention_mask"].to(last.dtype)
            pooled = getattr(output, "pooler_output", None)
            per_example = {"mean": (last * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1),
                           "cls": last[:, 0], "pooler": last[:, 0] if pooled is None else pooled}
            for name, values in per_example.items():
                found.setdefault(name, torch.zeros(len(items), values.shape[-1]))[positions] = values.float().cpu()
            for layer, states in enumerate(output.hidden_states):
                table = found.setdefault(f"layer_{layer}", torch.zeros(sum(kept), states.shape[-1]))
                for row, i in enumerate(positions):
                    table[offsets[i] : offsets[i] + kept[i]] = states[row, : kept[i]].float().cpu()
    return found


class RetentionProbe:
    """The pre-trained model's features on fixed held-out items, computed once; ``probe(model)`` scores a model:
    ``cka`` and ``mi_nce`` on the mean feature (``FEATURE``, which RIFT's term optimises at ``--preset study``), and
    ``cka_cls``, ``cka_pooler`` and ``cka_layer_K`` on features a loss may not optimise."""

    def __init__(self, pretrained_model, items: Sequence[EncodedExample], pad_token_id: int, batch_size: int):
        if len(items) < 4:
            raise ValueError("feature retention needs at least 4 examples (2 to fit the map, 2 to score it)")
        self.items, self.pad_token_id, self.batch_size = list(items), pad_token_id, batch_size
        self.pretrained = representations(pretrained_model, self.items, pad_token_id, batch_size)

    def __call__(self, model) -> dict[str, float]:
        found = representations(model, self.items, self.pad_token_id, self.batch_size)
        return retention_scores(found["mean"], self.pretrained["mean"]) | {
            f"cka_{name}": linear_cka(found[name], self.pretrained[name]) for name in found if name != "mean"}


def feature_retention(model, pretrained_model, items: Sequence[EncodedExample], pad_token_id: int,
                      batch_size: int) -> dict[str, float]:
    """``{"cka": ..., "mi_nce": ...}`` of ``model`` against ``pretrained_model`` on ``items``."""
    return RetentionProbe(pretrained_model, items, pad_token_id, batch_size)(model)
