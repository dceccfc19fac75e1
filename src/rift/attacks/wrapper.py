"""The classifier as attacks see it: inputs in, class probabilities out, every model query counted and cached.

A query is one input scored by the model. Inputs are keyed by their token ids (after truncation), not by their
text: two texts that encode alike ("Good" and "good" for an uncased model, or changes past the truncation point)
are the same query. Uncached inputs are scored in batches sorted by length, each padded to its own longest input.
A model that predicts by averaging stochastic passes (``rift.prediction``) is scored through that average, and
each of its passes counts as a query.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rift.errors import RiftError
from rift.models import classify, eval_mode
from rift.prediction import AveragedPredictor, VotePredictor

Key = tuple[tuple[int, ...], tuple[int, ...] | None]  # token ids, token type ids (None if the model has none)
Inputs = tuple[str, str | None]  # (text, text_pair)


class ModelWrapper:
    """A classifier and its tokenizer, with a cache of class probabilities and counters shared by all attacks.

    ``queries`` counts inputs the model scored, ``cache_hits`` inputs answered from the cache, and
    ``forward_calls`` the batches run; all three are cumulative. The device is the model's.
    """

    def __init__(self, model: nn.Module, tokenizer, *, batch_size: int = 64, max_length: int = 256,
                 predictor: AveragedPredictor | VotePredictor | None = None) -> None:
        """``predictor``: the model's averaged prediction, when it predicts so."""
        if batch_size < 1 or max_length < 2:
            raise RiftError(f"batch size and max length must be positive, got {batch_size} and {max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.predictor = predictor
        self.queries = 0
        self.cache_hits = 0
        self.forward_calls = 0
        self._cache: dict[Key, torch.Tensor] = {}
        self._inputs: dict[Key, Inputs] = {}  # the texts of each key, for an averaged prediction

    @property
    def passes_per_input(self) -> int:
        """Model passes one prediction costs: its averaged passes, or one."""
        return 1 if self.predictor is None else self.predictor.samples

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, inputs: Sequence[Inputs]) -> list[Key]:
        """The cache keys of ``inputs``: their token ids as the model will see them."""
        keys: list[Key | None] = [None] * len(inputs)
        for paired in (False, True):  # the tokenizer takes either all pairs or no pairs in one call
            chosen = [i for i, (_, pair) in enumerate(inputs) if (pair is not None) == paired]
            if not chosen:
                continue
            texts = [inputs[i][0] for i in chosen]
            pairs = [inputs[i][1] for i in chosen] if paired else None
            encoding = self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length)
            types = encoding.get("token_type_ids")
            for row, i in enumerate(chosen):
                keys[i] = (tuple(encoding["input_ids"][row]), tuple(types[row]) if types is not None else None)
                if self.predictor is not None:
                    self._inputs.setdefault(keys[i], inputs[i])
        return keys  # type: ignore[return-value]  # every slot was filled above

    def cached(self, key: Key) -> torch.Tensor | None:
        """The class probabilities of an input already scored, else None; not counted as a cache hit."""
        return self._cache.get(key)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._inputs.clear()

    def probabilities(self, keys: Sequence[Key]) -> torch.Tensor:
        """Class probabilities, one row per key; each uncached key is scored once, in length-sorted batches."""
        new = list(dict.fromkeys(k for k in keys if k not in self._cache))
        self.cache_hits += len(keys) - len(new)
        if new:
            self._score(new)
        return torch.stack([self._cache[k] for k in keys]) if keys else torch.empty(0)

    @torch.inference_mode()
    def _score(self, keys: list[Key]) -> None:
        pad = self.tokenizer.pad_token_id or 0
        keys = sorted(keys, key=lambda key: len(key[0]))  # similar lengths share a batch: little padding
        with eval_mode(self.model):
            for start in range(0, len(keys), self.batch_size):
                chunk = keys[start : start + self.batch_size]
                if self.predictor is not None:
                    scores = self.predictor.scores([self._inputs[key] for key in chunk])
                    for key, row in zip(chunk, scores.softmax(-1)):
                        self._cache[key] = row
                    self.queries += len(chunk) * self.passes_per_input
                    self.forward_calls += self.passes_per_input
                    continue
                width = len(chunk[-1][0])
                ids = torch.tensor([list(ids) + [pad] * (width - len(ids)) for ids, _ in chunk])
                mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])
                types = None
                if chunk[0][1] is not None:
                    types = torch.tensor([list(t) + [0] * (width - len(t)) for _, t in chunk]).to(self.device)
                logits = classify(
                    self.model, input_ids=ids.to(self.device), attention_mask=mask.to(self.device), token_type_ids=types
                ).logits
                for key, row in zip(chunk, logits.float().softmax(-1).cpu()):
                    self._cache[key] = row
                self.queries += len(chunk)
                self.forward_calls += 1
