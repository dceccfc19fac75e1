"""How strong a model's training adversary is against the attacks it is evaluated with, on the same examples.

A robust model that keeps much more accuracy under its own training adversary than under PWWS was trained
against too weak a search; one that keeps little more under either is not robust even to what it trained on,
so a stronger search cannot help it, more fitting can. For a model trained by rift (its ``rift_config.yaml``
names the adversary and its options) and one of its attack records, this runs the training adversary, with the
options it trained with and the model in eval mode, on the examples of the record and prints both accuracies,
the examples held by each only, and the paired difference with its 95% interval (Newcombe).

    .venv/bin/python benchmarks/adversary_strength.py MODEL_DIR [--attack pwws] [--adversary discrete]
        [--adversary-candidates 32] [--adversary-query-budget 48] [--batch-size 32] [--num-threads 1]

``MODEL_DIR`` is a cell of ``rift bench`` or a ``rift train`` output with ``attacks/examples_ATTACK.jsonl``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import yaml

from rift.adversaries import build_adversary
from rift.adversaries.context import TrainingContext
from rift.arguments import TrainingArguments
from rift.config import every_option
from rift.data import Example
from rift.data.batching import collate, encode_examples
from rift.attacks.results import held_by_all
from rift.evaluation.paired import exact_mcnemar
from rift.evaluation.robustness import read_results
from rift.models import classify, load_classifier, load_tokenizer
from rift.statistics import paired_difference_interval, wilson_interval


def held_under_adversary(model, tokenizer, args: TrainingArguments, examples: list[Example],
                         batch_size: int) -> list[bool]:
    """Per example: whether the model classifies it and the training adversary's x' of it correctly."""
    adversary = build_adversary(args)
    items = encode_examples(tokenizer, examples, args.max_length)
    adversary.setup(TrainingContext(model=model, tokenizer=tokenizer, num_labels=model.config.num_labels,
                                    train_examples=examples, train_items=items, device=torch.device("cpu"),
                                    log=print, current_step=lambda: 0))
    coverage = adversary.coverage
    print(f"{adversary.name} can produce {coverage['share_substitutions']:.1%} of the source's substitutions on "
          f"these examples")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    held: list[bool] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = adversary.collate(chunk, collate(chunk, pad))
        out = adversary.perturb(model, batch)
        with torch.no_grad():
            predictions = classify(model, **out.inputs).logits.argmax(-1)
        clean_correct = out.clean_logits.argmax(-1) == batch["labels"]
        held += (clean_correct & (predictions == batch["labels"])).tolist()
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--attack", default="pwws")
    parser.add_argument("--adversary", help="default: the model's own")
    parser.add_argument("--adversary-candidates", type=int)
    parser.add_argument("--adversary-query-budget", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-threads", type=int, default=1)
    cli = parser.parse_args()
    torch.set_num_threads(cli.num_threads)

    examples_file = cli.model_dir / "attacks" / f"examples_{cli.attack}.jsonl"
    records = read_results(examples_file)  # the file, or its compressed form in a record
    for needed, found in ((cli.model_dir / "rift_config.yaml", (cli.model_dir / "rift_config.yaml").is_file()),
                          (examples_file, bool(records))):
        if not found:
            parser.error(f"{needed} not found: MODEL_DIR must be a model trained by rift with a {cli.attack} record")
    config = yaml.safe_load((cli.model_dir / "rift_config.yaml").read_text())
    overrides = {"adversary": cli.adversary, "adversary_candidates": cli.adversary_candidates,
                 "adversary_query_budget": cli.adversary_query_budget}
    config |= {k: v for k, v in overrides.items() if v is not None}
    args = TrainingArguments.build(unread="drop", **{k: v for k, v in config.items() if k in every_option(TrainingArguments)})

    rows = [records[index] for index in sorted(records)]
    by_attack = held_by_all({cli.attack: records})
    examples = [Example(row.text, row.label, row.text_pair) for row in rows]

    tokenizer = load_tokenizer(str(cli.model_dir))
    model = load_classifier(str(cli.model_dir)).eval()
    by_adversary = held_under_adversary(model, tokenizer, args, examples, cli.batch_size)

    n = len(rows)
    attack_held = [by_attack[row.index] for row in rows]
    both = sum(a and b for a, b in zip(by_adversary, attack_held))
    only_adversary, only_attack = sum(by_adversary) - both, sum(attack_held) - both
    low, high = paired_difference_interval(both, only_adversary, only_attack, n)
    name = args.adversary + (f" ({args.adversary_candidates} candidates, {args.adversary_query_budget} queries)"
                             if args.adversary == "discrete" else "")
    for label, held in ((f"under {name}", sum(by_adversary)), (f"under {cli.attack}", sum(attack_held))):
        lo, hi = wilson_interval(held, n)
        print(f"{label}: {held / n:.3f} [{lo:.3f}, {hi:.3f}] of {n}")
    print(f"held under the adversary only : under {cli.attack} only = {only_adversary} : {only_attack} "
          f"(exact McNemar p = {exact_mcnemar(only_adversary, only_attack):.2g}); difference "
          f"{100 * (sum(by_adversary) - sum(attack_held)) / n:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]")


if __name__ == "__main__":
    main()
