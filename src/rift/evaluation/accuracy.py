"""Clean accuracy of a classifier on a split, batched by similar lengths, sharded over processes if any."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader

from rift.models import classify, eval_mode
from rift.data.batching import EncodedExample, collate, length_sorted_batches, model_inputs


@torch.inference_mode()
def predict(model, items: Sequence[EncodedExample], pad_token_id: int, batch_size: int, accelerator=None):
    """(predictions, labels) of ``items``, ordered by example index; with an accelerator each process scores a
    share and the results are gathered (duplicates from uneven sharding dropped)."""
    loader = DataLoader(
        list(items),
        batch_sampler=length_sorted_batches(items, batch_size),
        collate_fn=lambda batch: collate(batch, pad_token_id),
    )
    if accelerator is not None and accelerator.num_processes > 1:
        loader = accelerator.prepare(loader)
    else:
        accelerator = None
    predictions, labels, indices = [], [], []
    device = next(model.parameters()).device
    with eval_mode(model):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            pred = classify(model, **model_inputs(batch)).logits.argmax(-1)
            label, index = batch["labels"], batch["index"]
            if accelerator is not None:
                pred, label, index = accelerator.gather_for_metrics((pred, label, index))
            predictions.append(pred.cpu())
            labels.append(label.cpu())
            indices.append(index.cpu())
    order = torch.cat(indices).argsort()
    return torch.cat(predictions)[order], torch.cat(labels)[order]


def accuracy(model, items: Sequence[EncodedExample], pad_token_id: int, batch_size: int, accelerator=None) -> float:
    predictions, labels = predict(model, items, pad_token_id, batch_size, accelerator)
    return (predictions == labels).float().mean().item() if len(labels) else float("nan")


def averaged_accuracy(predictor, examples: Sequence, batch_size: int) -> float:
    """Clean accuracy of a model that predicts by averaging passes (``rift.prediction.AveragedPredictor``)."""
    correct = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        predictions = predictor.scores([(e.text, e.text_pair) for e in chunk]).argmax(-1)
        correct += sum(int(p) == e.label for p, e in zip(predictions.tolist(), chunk))
    return correct / len(examples) if len(examples) else float("nan")
