"""Deterministic batch orders: a fresh seeded shuffle per epoch, independent of the global random state, so that
a resumed run sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from rift.errors import RiftError


class ShuffledBatchSampler:
    """Batches of a seeded permutation of range(n), reshuffled per epoch (``start_epoch``)."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, drop_last: bool = False):
        self.num_examples, self.batch_size, self.seed, self.drop_last = num_examples, batch_size, seed, drop_last
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        # Not named set_epoch on purpose: Accelerate calls set_epoch with its own iteration counter, which restarts
        # at 0 when a run resumes; the trainer alone decides the epoch.
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.num_examples, generator=self._generator()).tolist()
        stop = len(self) * self.batch_size
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.batch_size
        return -(-self.num_examples // self.batch_size)


def training_batch_sampler(labels: Sequence[int], batch_size: int, seed: int, class_balanced: bool | None,
                           objective_default: bool) -> ShuffledBatchSampler:
    """The training batches: class-balanced if ``--class-balanced`` says so, else as the objective prefers."""
    if class_balanced if class_balanced is not None else objective_default:
        return ClassBalancedBatchSampler(labels, batch_size, seed)
    return ShuffledBatchSampler(len(labels), batch_size, seed)


class ClassBalancedBatchSampler(ShuffledBatchSampler):
    """Batches with the same number of examples of every class (RIFT's class-conditional InfoNCE needs them).

    Each epoch shuffles every class separately and deals ``batch_size // num_classes`` examples of each class per
    batch; the epoch ends when the smallest class runs out, so a batch is never unbalanced.
    """

    def __init__(self, labels: Sequence[int], batch_size: int, seed: int):
        classes = sorted(set(labels))
        if batch_size < len(classes):
            raise RiftError(f"a class-balanced batch needs an example of each of the {len(classes)} classes: "
                            f"--batch-size must be at least {len(classes)}, got {batch_size}")
        self.by_class = [[i for i, label in enumerate(labels) if label == c] for c in classes]
        self.per_class = batch_size // len(classes)
        super().__init__(len(labels), self.per_class * len(classes), seed, drop_last=True)

    def __iter__(self) -> Iterator[list[int]]:
        generator = self._generator()
        shuffled = [[members[j] for j in torch.randperm(len(members), generator=generator).tolist()]
                    for members in self.by_class]
        for b in range(len(self)):
            batch = [i for members in shuffled for i in members[b * self.per_class : (b + 1) * self.per_class]]
            order = torch.randperm(len(batch), generator=generator).tolist()
            yield [batch[j] for j in order]

    def __len__(self) -> int:
        return min(len(members) for members in self.by_class) // self.per_class
