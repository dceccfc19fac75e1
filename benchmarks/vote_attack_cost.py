"""What an attack on a smoothed model (SAFER, RanMASK) costs, with the vote's copies shared across candidates and
without.

    .venv/bin/python benchmarks/vote_attack_cost.py --model runs/certification/ranmask [--examples 10] [--attack pwws]

A model trained with ``--method safer`` or ``--method ranmask`` predicts by a vote over random copies of the text,
so an attack pays one forward pass per copy of every candidate it scores. rift seeds the copies by the input's shape
and draws them per word position (``rift.prediction``, ``rift.smoothing``): a candidate that changes a word shares
every copy in which that word is masked (RanMASK) or drawn alike (SAFER) with the text it came from, and the
predictor classifies each copy once. The baseline draws every input's copies independently (seeded by its whole
text, as rift did before) and forgets them after each call. Both attack the same SST-2 test examples of the seeded
order, side by side in one process; the table gives the copies drawn (every one a query), the copies classified,
the time, and what the attack found: the two predictors are different random functions of the text, so their
robust accuracies may differ by the vote's Monte-Carlo noise, which the baseline's independent draws let the attack
exploit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from common import add_machine_options, parse, print_table

from rift.attacks.registry import build_attack
from rift.attacks.results import summarize
from rift.data import load_task, resolve_data_dir
from rift.errors import RiftError
from rift.models import load_classifier, load_tokenizer
from rift.prediction import SubstitutionVote, VotePredictor, recorded_prediction
from rift.substitutions import build_substitution_source


class IndependentCopies(VotePredictor):
    """The baseline: each input's copies seeded by its whole text, none kept across calls."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, remembered=0, **kwargs)

    def generator(self, text: str, pair: str | None, draw: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.prediction.seed, zlib.crc32(f"{text}\x00{pair}".encode()), draw])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a folder written by rift train --method safer or ranmask")
    parser.add_argument("--examples", type=int, default=10, help="SST-2 test examples (the seeded order)")
    parser.add_argument("--attack", default="pwws")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    add_machine_options(parser)
    args = parse(parser)

    data_dir = resolve_data_dir(args.data_dir)
    task = load_task("sst2", data_dir, max_test_examples=args.examples, log=lambda _: None)
    examples = task.splits["test"]
    tokenizer = load_tokenizer(args.model)
    model = load_classifier(args.model).eval()
    prediction = recorded_prediction(model)
    if prediction is None:
        raise RiftError(f"{args.model} predicts with one forward pass; give a model trained with safer or ranmask")
    sets = None
    if isinstance(prediction, SubstitutionVote):
        sets = build_substitution_source(prediction.synonyms, data_dir, max_substitutes=prediction.max_substitutes)
    source = build_substitution_source("counterfitted", data_dir)

    header = ("copies", "examples", "robust", "seconds", "drawn", "classified", "classified/drawn", "model s")
    rows, seconds = [], {}
    for name, kind in (("independent", IndependentCopies), ("shared", VotePredictor)):
        predictor = kind(model, tokenizer, prediction, args.max_length, sets, batch_size=args.batch_size)
        attack = build_attack(args.attack, model, tokenizer, source, batch_size=args.batch_size,
                              max_length=args.max_length, predictor=predictor)
        start = time.perf_counter()
        summary = summarize(attack.attack(examples))
        seconds[name] = time.perf_counter() - start
        rows.append((name, summary["num_examples"], f"{summary['robust_accuracy']:.3f}", f"{seconds[name]:.0f}",
                     predictor.copies_drawn, predictor.copies_classified,
                     f"{predictor.copies_classified / max(predictor.copies_drawn, 1):.3f}",
                     f"{predictor.model_seconds:.0f}"))
    print(f"{args.attack} on a {prediction.kind} vote of {prediction.samples} copies ({args.model}), "
          f"{len(examples)} SST-2 test examples, {torch.get_num_threads()} threads")
    print_table(header, rows)
    print(f"independent / shared time: {seconds['independent'] / seconds['shared']:.2f}x")


if __name__ == "__main__":
    try:
        main()
    except RiftError as error:
        sys.exit(f"vote_attack_cost: error: {error}")
