"""How a model predicts.

Most models predict with one forward pass over the text. A model trained with DNE (``--method dne``, Zhou et al.
2021) predicts by averaging stochastic passes, as TextDefender (Li et al. 2021) attacks it: each pass draws convex
weights over every word's neighbourhood from a Dirichlet distribution and runs the model on the mixed words
(``rift.mixing``); the prediction's scores are the mean of the passes' L2-normalised logits. Its checkpoint
records how it predicts (``config.rift_prediction``: the number of passes, the aggregation and the neighbourhood),
so that ``rift attack`` and ``rift eval`` predict as it does, and every pass counts as a query.

Each input's draws come from a generator seeded by the recorded seed and the input's token ids, so that a
prediction does not depend on the other inputs of its batch, and a run is reproducible.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rift.errors import RiftError
from rift.mixing import collate_layouts, mixed_inputs, position_table, widest_row, word_layout
from rift.models import classify, eval_mode, input_embeddings, unwrap
from rift.substitutions import SubstitutionSource
from rift.substitutions.neighbourhood import NeighbourhoodSource
from rift.text.words import align

PREDICTION_KEY = "rift_prediction"  # the attribute of the model's config (config.json) that records it
AGGREGATION = "mean of L2-normalised logits"


@dataclass(frozen=True)
class HullAverage:
    """The averaged prediction of a DNE model over the Dirichlet hull of each word's neighbourhood."""

    samples: int  # passes per prediction
    alpha: float  # the Dirichlet concentration of the word itself and its substitutes
    decay: float  # the factor of alpha for the substitutes of substitutes
    neighbours: int  # candidates per word besides itself, at most
    synonyms: str  # the substitution source
    max_substitutes: int  # substitutes per word in the source
    seed: int = 0
    aggregation: str = AGGREGATION


def recorded_prediction(model) -> HullAverage | None:
    """How the checkpoint says the model predicts; None for one forward pass."""
    saved = getattr(getattr(unwrap(model), "config", None), PREDICTION_KEY, None)  # a bare module has no config
    if not saved:
        return None
    try:
        prediction = HullAverage(**saved)
    except TypeError:
        raise RiftError(f"the model's config.json records a prediction ({PREDICTION_KEY}) that this version of rift "
                        f"cannot read: {saved!r}") from None
    if prediction.aggregation != AGGREGATION:
        raise RiftError(f"the model's config.json records a prediction by {prediction.aggregation!r}; this version of "
                        f"rift averages by the {AGGREGATION} only")
    return prediction


def record_prediction(model, prediction: HullAverage) -> None:
    """Written with the model's config by ``save_pretrained``."""
    setattr(unwrap(model).config, PREDICTION_KEY, dataclasses.asdict(prediction))


def forget_prediction(model) -> None:
    """Back to one forward pass (a model fine-tuned further from a checkpoint that recorded an average)."""
    config = unwrap(model).config
    if hasattr(config, PREDICTION_KEY):
        delattr(config, PREDICTION_KEY)


def concentrations(hops: torch.Tensor, row_mask: torch.Tensor, alpha: float, decay: float) -> torch.Tensor:
    """The Dirichlet concentration of each candidate [B, R, C]: alpha for the word and its substitutes (hops 0 and
    1), alpha x decay for the substitutes of substitutes (hop 2), zero where a row has no candidate."""
    return torch.where(hops >= 2, alpha * decay, alpha) * row_mask


def sample_weights(concentration: torch.Tensor) -> torch.Tensor:
    """One Dirichlet draw per row [B, R, C] from torch's generator (training: the run seeds it and its resume
    state restores it); a row of one candidate gets weight 1."""
    present = concentration > 0
    gamma = torch.distributions.Gamma(torch.where(present, concentration, 1.0), 1.0).sample() * present
    return gamma / gamma.sum(-1, keepdim=True).clamp_min(1e-30)


class AveragedPredictor:
    """Scores of inputs as the recorded averaged prediction gives them."""

    def __init__(self, model, tokenizer, prediction: HullAverage, source: SubstitutionSource, max_length: int):
        self.model, self.tokenizer, self.prediction, self.max_length = model, tokenizer, prediction, max_length
        self.source = NeighbourhoodSource(source, prediction.neighbours)
        self.table, self.offset = position_table(model)  # fails early, with the reason, for a model it cannot mix

    @property
    def samples(self) -> int:
        return self.prediction.samples

    def draws(self, input_ids: Sequence[int], concentration: torch.Tensor) -> torch.Tensor:
        """``samples`` Dirichlet draws [S, R, C] of one input's rows, seeded by the input."""
        seed = zlib.crc32(np.asarray(input_ids, dtype=np.int64).tobytes())
        rng = np.random.default_rng([self.prediction.seed, seed])
        weights = torch.zeros(self.samples, *concentration.shape)
        for row, alphas in enumerate(concentration.tolist()):
            present = [c for c in alphas if c > 0]
            weights[:, row, :len(present)] = torch.from_numpy(rng.dirichlet(present, size=self.samples)
                                                              if len(present) > 1 else np.ones((self.samples, 1)))
        return weights

    @torch.inference_mode()
    def scores(self, inputs: Sequence[tuple[str, str | None]]) -> torch.Tensor:
        """[N, classes]: the mean over the passes of each pass's logits scaled to L2 norm 1."""
        alignments = [align(self.tokenizer, text, pair, self.max_length) for text, pair in inputs]
        layouts = [word_layout(a, self.tokenizer, self.source, self.max_length) for a in alignments]
        types = None
        if alignments[0].token_type_ids is not None:
            width = max(len(a.input_ids) for a in alignments)
            types = torch.tensor([a.token_type_ids + [0] * (width - len(a.input_ids)) for a in alignments])
        batch = collate_layouts(layouts, types, widest_row(layouts))
        concentration = concentrations(batch["mix_hops"], batch["mix_row_mask"], self.prediction.alpha,
                                       self.prediction.decay)
        weights = torch.stack([self.draws(a.input_ids, c) for a, c in zip(alignments, concentration)], dim=1)
        device = self.table.device
        batch = {k: v.to(device) for k, v in batch.items()}
        with eval_mode(self.model):
            embedded = input_embeddings(self.model)(batch["mix_ids"])
            passes = [classify(self.model, **mixed_inputs(embedded, self.table, self.offset, batch,
                                                          weights[s].to(device))).logits.float()
                      for s in range(self.samples)]
        return torch.stack([F.normalize(logits, dim=-1) for logits in passes]).mean(0).cpu()
