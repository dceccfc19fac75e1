"""Time of one training step of every objective and adversary, as ratios to ``standard`` and to token-level
``ascc``, measured side by side in one run.

An entry is a method, or METHOD+ADVERSARY (``rift+discrete``: rift with the discrete adversary; a bare method uses
the token-level ASCC adversary). Also compares rift's RIFT step with the authors' formulation (teacher features
recomputed every step, and a second student pass on x' for the MI term).

    .venv/bin/python benchmarks/objective_cost.py [--model minilm] [--steps 5] [--batch-size 32] [--max-length 64]
        [--methods standard,ascc,rift,ascc+discrete,rift+discrete,ascc+random,ascc+word-ascc,rift+word-ascc]
        [--adversary-query-budget 48] [--preset study] [--diagnostics 50]

--preset takes a training preset's objective settings (beta, the adversarial cross-entropy, the MI term's feature,
...); the timing options above (batch size, max length, ASCC steps, the discrete adversary's budget) stay the
benchmark's own.

Every objective is timed on the same class-balanced SST-2 batches, after one warm-up step, in interleaved
rounds so that background load hits all of them alike; the median step time is reported.

    .venv/bin/python benchmarks/objective_cost.py --loop-baseline REV [--loop-methods standard,ascc,rift]
        [--loop-steps 2,6] [--loop-rounds 1] [--threads 1] [--preset study]

times whole ``rift train`` runs instead: each method at the preset through this checkout's training loop and
through the loop of git revision REV (its ``src/`` unpacked to a scratch folder), alternately, each run in a fresh
process. A short and a long run (about 2 and 6 optimiser steps; class-balanced batches may take fewer) give the
cost of a step as the difference of their times over the difference of their steps, free of what every run does
once (loading, the final save and test).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers

from rift.adversaries.context import TrainingContext
from rift.arguments import TrainingArguments, method_entry
from rift.config import build_config
from rift.data.batching import encode_examples
from rift.data.sampling import ClassBalancedBatchSampler
from rift.models import classify, load_classifier, load_tokenizer
from rift.objectives import OBJECTIVES
from rift.objectives.rift import RIFTObjective
from rift.presets import PRESETS
from rift.training.hf_trainer import term_gradient_norms

ROOT = Path(__file__).resolve().parents[1]
# one run of ``rift train`` in a fresh process, timed whole; it imports whichever rift is on PYTHONPATH
LOOP_RUN = """
import json, sys, tempfile, time
import torch
from rift.arguments import TrainingArguments
from rift.config import build_config
from rift.presets import PRESETS
options = json.loads(sys.argv[1])
torch.set_num_threads(options.pop("threads"))
args = build_config(TrainingArguments, options | {"output_dir": tempfile.mkdtemp() + "/run"}, PRESETS)
task = args.load_task(log=lambda *a: None)
try:
    from rift.training.run import train_run
    run = lambda: train_run(args, task=task, log=lambda *a: None)
except ImportError:  # the loop before rift.training.run
    from rift.training.trainer import Trainer
    run = lambda: Trainer(args, task=task, log=lambda *a: None).train()
started = time.perf_counter()
metrics = run()
print(json.dumps({"seconds": time.perf_counter() - started, "steps": metrics["steps"]}))
"""


class Prepared:
    """The model, tokenizer, objective (set up) and encoded training examples of one benchmark entry."""

    def __init__(self, args: TrainingArguments, objective):
        task = args.load_task(log=lambda *a: None)
        self.tokenizer = load_tokenizer(args.model)
        self.model = load_classifier(args.model, task.label_names)
        self.items = encode_examples(self.tokenizer, task.splits["train"], args.max_length)
        self.objective = objective
        objective.setup(TrainingContext(model=self.model, tokenizer=self.tokenizer, num_labels=task.num_labels,
                                        train_examples=task.splits["train"], train_items=self.items,
                                        device=torch.device("cpu"), log=lambda *a: None, current_step=lambda: 0,
                                        current_epoch=lambda: float("inf")))  # past any clean first epochs (a2t)
        self.pad_token_id = self.tokenizer.pad_token_id


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
    parser.add_argument("--diagnostics", type=int, default=0, metavar="N",
                        help="also time the training diagnostics and their share of training when run every N steps")
    parser.add_argument("--loop-baseline", metavar="REV", help="time whole rift train runs against this git "
                                                                "revision's training loop instead")
    parser.add_argument("--loop-methods", default="standard,ascc,rift")
    parser.add_argument("--loop-steps", default="2,6", help="optimiser steps of the short and the long run")
    parser.add_argument("--loop-rounds", type=int, default=1, help="rounds of the four runs; the median per-step "
                                                                   "estimate is reported")
    options = parser.parse_args()
    transformers.logging.set_verbosity_error()
    if options.loop_baseline:
        compare_loops(options)
        return
    if options.threads:
        torch.set_num_threads(options.threads)
    methods = options.methods.split(",")
    classes = dict(OBJECTIVES) | {"rift-authors": AuthorsRIFTObjective}

    trainers, batches = {}, None
    for entry in methods:
        method, adversary = method_entry(entry)
        # every entry gets the same adversary settings; each method reads its own (rift-authors: rift's)
        args = build_config(TrainingArguments, dict(
            output_dir="/tmp/rift-objective-cost", task="sst2", model=options.model,
            method="rift" if method == "rift-authors" else method,
            adversary=adversary or "ascc", adversary_candidates=options.adversary_candidates,
            adversary_query_budget=options.adversary_query_budget,
            max_train_examples=options.batch_size * (options.steps + 1), max_dev_examples=8, max_test_examples=8,
            batch_size=options.batch_size, max_length=options.max_length, ascc_steps=options.ascc_steps, seed=0,
            resume=True, preset=options.preset,
        ), PRESETS, unread="drop")
        trainer = Prepared(args, classes[method](args))
        if batches is None:  # the same class-balanced batches for every objective
            labels = [item.label for item in trainer.items]
            batches = [[trainer.items[i] for i in b] for b in ClassBalancedBatchSampler(labels, options.batch_size, 0)]
        params = [p for m in (trainer.model, trainer.objective) for p in m.parameters() if p.requires_grad]
        trainers[entry] = (trainer, torch.optim.AdamW(params, lr=1e-5), [])
    diagnostics = {entry: [] for entry in methods}  # seconds of term_gradient_norms on each timed step

    def step(method: str, items) -> float:
        trainer, optimizer, _ = trainers[method]
        batch = trainer.objective.collate(items, trainer.pad_token_id)
        trainer.model.train()
        started = time.perf_counter()
        terms = trainer.objective(trainer.model, batch)
        seconds = time.perf_counter() - started
        if options.diagnostics:  # timed apart: a diagnosed step costs the step plus this
            diagnosed = time.perf_counter()
            term_gradient_norms(trainer.model, trainer.objective.loss_parts(terms))
            diagnostics[method].append(time.perf_counter() - diagnosed)
        started = time.perf_counter()
        terms["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        return seconds + time.perf_counter() - started

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
    if options.diagnostics:
        print(f"training diagnostics (each weighted term's gradient norm), one diagnosed step every "
              f"{options.diagnostics} steps:")
        print(f"{'method':<16}{'s per diagnosis':>16}{'vs a step':>11}{'share of training':>19}")
        for method in methods:
            extra = statistics.median(diagnostics[method]) / medians[method]
            print(f"{method:<16}{statistics.median(diagnostics[method]):>16.3f}{extra:>10.2f}x"
                  f"{extra / options.diagnostics:>18.1%}")
    if {"rift", "ascc"} <= medians.keys():
        print(f"rift / ascc: {medians['rift'] / medians['ascc']:.2f}x")
    if {"rift", "rift-authors"} <= medians.keys():
        print(f"rift / authors' formulation: {medians['rift'] / medians['rift-authors']:.2f}x")


def loop_run(source: Path, method: str, steps: int, options) -> dict:
    """One ``rift train`` run of ``steps`` optimiser steps through the rift under ``source`` (its ``src`` folder)."""
    run = {"task": "sst2", "model": options.model, "method": method, "preset": options.preset, "epochs": 1,
           "max_train_examples": options.batch_size * steps, "max_dev_examples": 2, "max_test_examples": 2,
           "batch_size": options.batch_size, "max_length": options.max_length, "retention_examples": 0,
           "seed": 0, "threads": options.threads or 1}
    environment = os.environ | {"PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-c", LOOP_RUN, json.dumps(run)], capture_output=True, text=True,
                            env=environment, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{method} ({source}): {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare_loops(options) -> None:
    short, long = (int(n) for n in options.loop_steps.split(","))
    with tempfile.TemporaryDirectory(prefix="rift-loop-baseline-") as scratch:
        archive = Path(scratch) / "src.tar"
        subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), options.loop_baseline, "src"], cwd=ROOT,
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        sources = {"new": ROOT / "src", "old": Path(scratch) / "src"}
        print(f"rift train runs at --preset {options.preset}, batch {options.batch_size}, torch threads "
              f"{options.threads or 1}; new: this checkout, old: {options.loop_baseline}; per step: the time of a run "
              f"of about {long} steps less that of one of about {short}, over the difference in steps")
        print(f"{'method':<10}{'old s/step':>12}{'new s/step':>12}{'new / old':>11}")
        for method in options.loop_methods.split(","):
            estimates = {"old": [], "new": []}
            for _ in range(options.loop_rounds):
                runs = {}
                for steps in (short, long):  # old and new alternate, so that background load hits both alike
                    for loop in ("old", "new"):
                        runs[loop, steps] = loop_run(sources[loop], method, steps, options)
                taken = {(loop, steps): run["steps"] for (loop, steps), run in runs.items()}
                if taken["old", short] != taken["new", short] or taken["old", long] != taken["new", long]:
                    raise SystemExit(f"{method}: the two loops took different numbers of steps: {taken}")
                for loop in sources:
                    estimates[loop].append((runs[loop, long]["seconds"] - runs[loop, short]["seconds"])
                                           / (taken[loop, long] - taken[loop, short]))
            per_step = {loop: statistics.median(values) for loop, values in estimates.items()}
            print(f"{method:<10}{per_step['old']:>12.3f}{per_step['new']:>12.3f}{per_step['new'] / per_step['old']:>10.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
