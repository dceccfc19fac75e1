"""Throughput of the word-substitution attacks on SST-2 dev examples, and what caching and batching save.

    .venv/bin/python benchmarks/attack_throughput.py [--model DIR] [--examples 24] [--one-by-one]

The default model is MiniLM with an untrained head: fine for throughput, though a trained model (``--model`` a
folder written by ``rift train``) is more confident and so takes more queries to break. For each attack the table
shows examples and model queries per second; "requested" counts the inputs the searches asked for, "executed" the
ones the model scored (the rest came from the cache), and "per forward" the inputs per model call (batching over
candidates and examples). ``--one-by-one`` adds a run that attacks one example per call, for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from common import add_machine_options, parse, print_table

from rift.attacks.registry import build_attack
from rift.attacks.results import summarize
from rift.data import load_task, resolve_data_dir
from rift.errors import RiftError
from rift.models import load_classifier, load_tokenizer
from rift.substitutions import build_substitution_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm", help="model name or folder (default: minilm, untrained head)")
    parser.add_argument("--examples", type=int, default=24, help="SST-2 dev examples (seeded, stratified)")
    parser.add_argument("--attacks", nargs="+", default=["pwws", "genetic"])
    parser.add_argument("--population", type=int, default=10, help="genetic population (paper: 60)")
    parser.add_argument("--generations", type=int, default=5, help="genetic generations (paper: 40)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--one-by-one", action="store_true", help="also attack one example per call")
    add_machine_options(parser)
    args = parse(parser)

    data_dir = resolve_data_dir(args.data_dir)
    task = load_task("sst2", data_dir, max_dev_examples=args.examples, log=lambda _: None)
    examples = task.splits["dev"]
    tokenizer = load_tokenizer(args.model)
    model = load_classifier(args.model, task.label_names)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    source = build_substitution_source("counterfitted", data_dir)

    header = ("attack", "mode", "examples", "success", "seconds", "ex/s", "executed", "queries/s", "requested",
              "saved", "per forward")
    rows = []
    for name in args.attacks:
        options = {"population": args.population, "generations": args.generations} if name == "genetic" else {}
        for one_by_one in (False, True) if args.one_by_one else (False,):
            attack = build_attack(
                name, model, tokenizer, source, batch_size=args.batch_size, max_length=args.max_length, **options
            )
            start = time.perf_counter()
            if one_by_one:
                results = [r for i, e in enumerate(examples) for r in attack.attack([e], indices=[i])]
            else:
                results = attack.attack(examples)
            seconds = time.perf_counter() - start
            wrapper = attack.model
            executed, requested = wrapper.queries, wrapper.queries + wrapper.cache_hits
            summary = summarize(results)
            rows.append((
                name, "one by one" if one_by_one else "batched", len(results),
                f"{summary['attack_success_rate'] or 0:.0%}", f"{seconds:.1f}", f"{len(results) / seconds:.2f}",
                executed, f"{executed / seconds:.0f}", requested, f"{1 - executed / requested:.0%}",
                f"{executed / max(wrapper.forward_calls, 1):.1f}",
            ))
    print(f"model {args.model} on {device} ({torch.get_num_threads()} threads), {len(examples)} SST-2 dev examples, "
          f"batch size {args.batch_size}, max length {args.max_length}, genetic {args.population}x{args.generations}")
    print_table(header, rows)


if __name__ == "__main__":
    try:
        main()
    except RiftError as error:
        sys.exit(f"attack_throughput: error: {error}")
