"""Tokenized examples and their padding into batches; each batch is padded to its own longest input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from rift.data import Example
from rift.text.words import WordAlignment, align


@dataclass
class EncodedExample:
    index: int  # position in its split, a stable key for per-example caches (teacher features)
    label: int
    alignment: WordAlignment


def encode_examples(tokenizer, examples: Sequence[Example], max_length: int) -> list[EncodedExample]:
    return [
        EncodedExample(i, example.label, align(tokenizer, example.text, example.text_pair, max_length))
        for i, example in enumerate(examples)
    ]


def collate(items: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    width = max(len(item.alignment.input_ids) for item in items)
    input_ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    has_types = items[0].alignment.token_type_ids is not None
    token_type_ids = torch.zeros((len(items), width), dtype=torch.long) if has_types else None
    for row, item in enumerate(items):
        ids = item.alignment.input_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        if has_types:
            token_type_ids[row, : len(ids)] = torch.tensor(item.alignment.token_type_ids)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([item.label for item in items]),
        "index": torch.tensor([item.index for item in items]),
    }
    if has_types:
        batch["token_type_ids"] = token_type_ids
    return batch


def length_sorted_batches(items: Sequence[EncodedExample], batch_size: int) -> list[list[int]]:
    """Consecutive batches of positions in ``items`` sorted by length, so that little padding is computed."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].alignment.input_ids))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The part of a batch that the model's forward takes."""
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
