"""How a model predicts.

Most models predict with one forward pass over the text. A model trained with DNE (``--method dne``, Zhou et al.
2021) predicts by averaging stochastic passes, as TextDefender (Li et al. 2021) attacks it: each pass draws convex
weights over every word's neighbourhood from a Dirichlet distribution and runs the model on the mixed words
(``rift.mixing``); the prediction's scores are the mean of the passes' L2-normalised logits. Its checkpoint
records how it predicts (``config.rift_prediction``: the number of passes, the aggregation and the neighbourhood),
so that ``rift attack`` and ``rift eval`` predict as it does, and every pass counts as a query.

A model trained with SAFER (``--method safer``) or RanMASK (``--method ranmask``) predicts by a vote over random
copies of the text (``rift.smoothing``): every word drawn from its perturbation set, or most words masked. The
scores are the shares of the copies' votes, the prediction the class most voted for; ``rift certify`` certifies that
vote (``rift.evaluation.certification``).

Each input's draws come from a generator seeded by the recorded seed and the input, so that a prediction does not
depend on the other inputs of its batch, and a run is reproducible. A DNE draw is seeded by the input's token ids. A
vote's copies are seeded by the input's shape, its number of words (and for a pair its first text), and draw one
number per word position: texts that differ in a few words, an input and an attack's candidates, then share every
copy in which those words are masked or drawn alike (common random numbers), and each copy is classified once.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Sequence
from itertools import islice
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rift.errors import RiftError
from rift.mixing import collate_layouts, mixed_inputs, position_table, widest_row, word_layout
from rift.models import classify, eval_mode, input_embeddings, unwrap
from rift.substitutions import SubstitutionSource
from rift.smoothing import ranmask_copy, safer_copy
from rift.substitutions.neighbourhood import NeighbourhoodSource
from rift.substitutions.perturbation_sets import PerturbationSets
from rift.text.words import align, split_words

PREDICTION_KEY = "rift_prediction"  # the attribute of the model's config (config.json) that records it
AGGREGATION = "mean of L2-normalised logits"
VOTES = "share of votes"


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
    kind: str = "dne"  # checkpoints recorded before SAFER and RanMASK have no kind: theirs is this one


@dataclass(frozen=True)
class SubstitutionVote:
    """SAFER's vote over copies with every word drawn from its perturbation set."""

    samples: int  # copies per prediction
    set_size: int  # words per perturbation set, at most
    synonyms: str  # the substitution source the sets are built from
    max_substitutes: int  # substitutes per word in the source
    seed: int = 0
    aggregation: str = VOTES
    kind: str = "safer"


@dataclass(frozen=True)
class MaskVote:
    """RanMASK's vote over copies with all but a few words masked."""

    samples: int  # copies per prediction
    mask_rate: float  # the share of words masked
    seed: int = 0
    aggregation: str = VOTES
    kind: str = "ranmask"


Prediction = HullAverage | SubstitutionVote | MaskVote
PREDICTIONS = {kind.__dataclass_fields__["kind"].default: kind for kind in (HullAverage, SubstitutionVote, MaskVote)}


def recorded_prediction(model) -> Prediction | None:
    """How the checkpoint says the model predicts; None for one forward pass."""
    saved = getattr(getattr(unwrap(model), "config", None), PREDICTION_KEY, None)  # a bare module has no config
    if not saved:
        return None
    kind = PREDICTIONS.get(saved.get("kind", "dne")) if isinstance(saved, dict) else None
    try:
        prediction = kind(**saved)
    except TypeError:
        raise RiftError(f"the model's config.json records a prediction ({PREDICTION_KEY}) that this version of rift "
                        f"cannot read: {saved!r}") from None
    expected = kind.__dataclass_fields__["aggregation"].default
    if prediction.aggregation != expected:
        raise RiftError(f"the model's config.json records a {prediction.kind} prediction by "
                        f"{prediction.aggregation!r}; this version of rift aggregates it by the {expected} only")
    return prediction


def record_prediction(model, prediction: Prediction) -> None:
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


class VotePredictor:
    """Scores of inputs as a recorded vote gives them: each class's share of the votes of ``samples`` random copies
    (SAFER's or RanMASK's, ``rift.smoothing``). A copy is classified once: the classes of the ``remembered`` copies
    classified last are kept across calls, so an attack's candidates pay only for the copies their changes touch."""

    def __init__(self, model, tokenizer, prediction: SubstitutionVote | MaskVote, max_length: int,
                 source: SubstitutionSource | None = None, batch_size: int = 64, remembered: int = 200_000):
        self.model, self.tokenizer, self.prediction = model, tokenizer, prediction
        self.max_length, self.batch_size, self.remembered = max_length, batch_size, remembered
        self.model_seconds = 0.0  # time spent in the model's forward passes, of all calls
        self.classified: dict[tuple[str, str | None], int] = {}  # copy -> class, oldest first
        self.copies_drawn = self.copies_classified = 0  # of all calls: what the sharing saves
        if isinstance(prediction, SubstitutionVote):
            if source is None:
                raise RiftError("a SAFER vote needs the substitution source its perturbation sets are built from")
            sets = PerturbationSets(source, prediction.set_size)
            self.copy = lambda text, rng: safer_copy(text, sets, rng)
        else:
            if tokenizer.mask_token is None:
                raise RiftError(f"a RanMASK vote masks words with the tokenizer's mask token, and "
                                f"{type(tokenizer).__name__} has none")
            self.copy = lambda text, rng: ranmask_copy(text, prediction.mask_rate, tokenizer.mask_token, rng)

    @property
    def samples(self) -> int:
        return self.prediction.samples

    def generator(self, text: str, pair: str | None, draw: int = 0) -> np.random.Generator:
        """The copies' generator of one input and draw. The prediction's copies (draw 0) are seeded by the recorded
        seed and the input's shape (the number of words of the text copied; the first text of a pair, which is
        kept), which word substitutions keep, so that an attack's candidates share them. A certificate's copies
        (draw 1 selects its class, draw 2 bounds it) are seeded by the whole input, so that the certificates of
        different examples fail independently."""
        kept, copied = ("", text) if pair is None else (text, pair)
        key = f"{kept}\x00{len(split_words(copied))}" if draw == 0 else f"{text}\x00{pair}"
        return np.random.default_rng([self.prediction.seed, zlib.crc32(key.encode()), draw])

    def copies(self, text: str, pair: str | None, samples: int, draw: int = 0) -> list[tuple[str, str | None]]:
        """``samples`` random copies of one input; a text pair is copied in its second text, the one attacks change."""
        rng = self.generator(text, pair, draw)
        if pair is None:
            return [(self.copy(text, rng), None) for _ in range(samples)]
        return [(text, self.copy(pair, rng)) for _ in range(samples)]

    @torch.inference_mode()
    def predictions(self, inputs: Sequence[tuple[str, str | None]]) -> list[int]:
        """The model's class for each input, one forward pass each, every distinct input not classified lately
        once."""
        found = self.classified
        distinct = [item for item in dict.fromkeys(inputs) if item not in found]
        self.copies_drawn += len(inputs)
        self.copies_classified += len(distinct)
        device = next(self.model.parameters()).device
        with eval_mode(self.model):
            for start in range(0, len(distinct), self.batch_size):
                chunk = distinct[start:start + self.batch_size]
                pairs = [pair for _, pair in chunk]
                encoded = self.tokenizer([text for text, _ in chunk], pairs if pairs[0] is not None else None,
                                         truncation=True, max_length=self.max_length, padding=True,
                                         return_tensors="pt")
                started = time.perf_counter()
                logits = classify(self.model, **{k: v.to(device) for k, v in encoded.items()}).logits
                found.update(zip(chunk, logits.argmax(-1).tolist()))
                self.model_seconds += time.perf_counter() - started
        answers = [found[item] for item in inputs]
        for oldest in list(islice(found, max(0, len(found) - self.remembered))):
            del found[oldest]
        return answers

    def votes(self, text: str, pair: str | None, samples: int, draw: int = 0) -> torch.Tensor:
        """Votes per class [classes] of ``samples`` copies of one input."""
        classes = unwrap(self.model).config.num_labels
        return torch.bincount(torch.tensor(self.predictions(self.copies(text, pair, samples, draw))),
                              minlength=classes)

    def scores(self, inputs: Sequence[tuple[str, str | None]]) -> torch.Tensor:
        """[N, classes]: each class's share of the votes of ``samples`` copies of each input (all inputs' copies
        classified together)."""
        copies = [copy for text, pair in inputs for copy in self.copies(text, pair, self.samples)]
        voted = torch.tensor(self.predictions(copies)).view(len(inputs), self.samples)
        classes = unwrap(self.model).config.num_labels
        return F.one_hot(voted, classes).float().mean(1)
