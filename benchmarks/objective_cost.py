"""Time of one training step of every objective and adversary, as ratios to ``standard`` and to token-level
``ascc``, measured side by side in one run.

An entry is a method, or METHOD+ADVERSARY (``rift+discrete``: rift with the discrete adversary; a bare method uses
the token-level ASCC adversary). Also compares rift's RIFT step with the authors' formulation (teacher features
recomputed every step, and a second student pass on x' for the MI term).

    .venv/bin/python benchmarks/objective_cost.py [--model minilm] [--steps 5] [--batch-size 32] [--max-length 64]
        [--methods standard,ascc,rift,ascc+discrete,rift+discrete,ascc+random,ascc+word-ascc,rift+word-ascc]
        [--adversary-query-budget 48] [--preset study]

--preset takes a training preset's objective settings (beta, the adversarial cross-entropy, the MI term's feature,
...); the timing options above (batch size, max length, ASCC steps, the discrete adversary's budget) stay the
benchmark's own.

Every objective is timed on the same class-balanced SST-2 batches, after one warm-up step, in interleaved
rounds so that background load hits all of them alike; the median step time is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers

from rift.arguments import TrainingArguments
from rift.config import build_config
from rift.models import classify
from rift.objectives import OBJECTIVES
from rift.presets import PRESETS
from rift.objectives.rift import RIFTObjective
from rift.training.sampling import ClassBalancedBatchSampler
from rift.training.trainer import Trainer


class AuthorsRIFTObjective(RIFTObjective):
    """RIFT as the authors' code computes it: teacher features recomputed for every batch, and the student run on
    x' once more for the MI term."""

    name = "rift-authors"

    def teacher_features(self, batch):
        with torch.no_grad():
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            return classify(self.teacher, return_pooled=True, **inputs).pooled.float()

    def extra_terms(self, model, batch, clean, adversarial):
        again = self.student(model, return_pooled=True, **self.adversary.perturb(model, batch).inputs)
        mi = self.mutual_information_loss(again.pooled.float(), self.teacher_features(batch), batch["labels"])
        return {"mi": self.args.alpha * mi}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per objective")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--ascc-steps", type=int, default=PRESETS["cpu"]["ascc_steps"])
    parser.add_argument("--methods", default="standard,ascc,rift,rift-authors,rift-uncond,rift-clean,l2sp,mixout,"
                                              "ascc+discrete,rift+discrete,ascc+random,ascc+word-ascc,rift+word-ascc")
    parser.add_argument("--adversary-candidates", type=int, default=PRESETS["study"]["adversary_candidates"])
    parser.add_argument("--adversary-query-budget", type=int, default=PRESETS["study"]["adversary_query_budget"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="a training preset whose objective settings every entry uses")
    options = parser.parse_args()
    transformers.logging.set_verbosity_error()
    if options.threads:
        torch.set_num_threads(options.threads)
    methods = options.methods.split(",")
    classes = dict(OBJECTIVES) | {"rift-authors": AuthorsRIFTObjective}

    trainers, batches = {}, None
    for entry in methods:
        method, _, adversary = entry.partition("+")
        args = build_config(TrainingArguments, dict(
            output_dir="/tmp/rift-objective-cost", task="sst2", model=options.model, method=method,
            adversary=adversary or "ascc", adversary_candidates=options.adversary_candidates,
            adversary_query_budget=options.adversary_query_budget,
            max_train_examples=options.batch_size * (options.steps + 1), max_dev_examples=8, max_test_examples=8,
            batch_size=options.batch_size, max_length=options.max_length, ascc_steps=options.ascc_steps, seed=0,
            resume=True, preset=options.preset,
        ), PRESETS)
        trainer = Trainer(args, objective=classes[method](args), log=lambda *a: None)
        trainer.objective.setup(trainer.context())
        if batches is None:  # the same class-balanced batches for every objective
            labels = [item.label for item in trainer.encoded["train"]]
            batches = [[trainer.encoded["train"][i] for i in b] for b in ClassBalancedBatchSampler(labels, options.batch_size, 0)]
        params = [p for m in (trainer.model, trainer.objective) for p in m.parameters() if p.requires_grad]
        trainers[entry] = (trainer, torch.optim.AdamW(params, lr=1e-5), [])

    def step(method: str, items) -> float:
        trainer, optimizer, _ = trainers[method]
        batch = trainer.objective.collate(items, trainer.pad_token_id)
        trainer.model.train()
        started = time.perf_counter()
        terms = trainer.objective(trainer.model, batch)
        terms["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    for method in methods:  # warm-up (also fills rift's teacher cache for the first batch only)
        step(method, batches[0])
    for items in batches[1 : options.steps + 1]:
        for method in methods:
            trainers[method][2].append(step(method, items))

    medians = {method: statistics.median(trainers[method][2]) for method in methods}
    print(f"model {options.model}, batch {options.batch_size} x <= {options.max_length} tokens, "
          f"ASCC steps {options.ascc_steps}, discrete: {options.adversary_candidates} candidates, "
          f"{options.adversary_query_budget} queries; {options.steps} timed steps, torch threads {torch.get_num_threads()}"
          + (f"; objective settings of --preset {options.preset}" if options.preset else ""))
    print(f"{'method':<16}{'median s/step':>15}{'vs standard':>13}{'vs ascc':>10}")
    for method in methods:
        ratios = [f"{medians[method] / medians[base]:.2f}x" if base in medians else "-" for base in ("standard", "ascc")]
        print(f"{method:<16}{medians[method]:>15.3f}{ratios[0]:>13}{ratios[1]:>10}")
    if {"rift", "ascc"} <= medians.keys():
        print(f"rift / ascc: {medians['rift'] / medians['ascc']:.2f}x")
    if {"rift", "rift-authors"} <= medians.keys():
        print(f"rift / authors' formulation: {medians['rift'] / medians['rift-authors']:.2f}x")


if __name__ == "__main__":
    main()
