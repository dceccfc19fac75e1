"""``rift bench``: a grid of tasks x methods x seeds, every requested attack on every trained model, and the table of
means and standard deviations over seeds that a study reports.

Each cell is ``OUT/cells/TASK-METHOD-sSEED/``: the ``rift train`` run (its output folder; trained with resume on)
and ``attacks/`` (the ``rift attack`` output folder). The grid resumes cell by cell: a cell whose training
``metrics.json`` and every requested attack summary exist is skipped; any other cell runs again, its training and
attacks continuing from what they saved (``resume/``, ``examples_ATTACK.jsonl``). The times recorded per cell are
the training's ``train_seconds`` and each attack's summed per-example seconds, both of which add up correctly across
interruptions. A cell's seed is its training seed; every cell attacks the same sample of the split (``--attack-seed``),
so that models are compared on the same examples; ``rift attack --seed S --sample-seed A`` reproduces any cell.

``rift record OUT DEST`` copies a grid without its weights and resume states (kilobytes per cell instead of
hundreds of megabytes): enough to keep a study beside its write-up, re-tabulate it, report on it, and continue it
elsewhere, since ``rift bench`` skips the recorded cells and trains only the missing ones.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from rift.arguments import (
    AttackArguments,
    BenchArguments,
    DataArguments,
    TrainingArguments,
)
from rift.api import attack_results
from rift.config import build_config
from rift.errors import RiftError
from rift.evaluation.intervals import wilson_interval
from rift.evaluation.paired import compare_methods
from rift.evaluation.robustness import examples_file
from rift.objectives import OBJECTIVES
from rift.presets import PRESETS
from rift.reporting.model_card import CARD_FILE, ROBUSTNESS_FILE
from rift.reporting.tables import grid_tables, to_markdown
from rift.training.trainer import (
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    Trainer,
    changed_options,
)

CELLS_DIR = "cells"
ATTACKS_DIR = "attacks"
RESULTS_FILES = ("results.json", "results.csv", "results.md")
# what a recorded cell keeps besides attacks/: the training's options, metrics and log, the model's config (its
# label names, for the report), and its model card with the attack results it shows
RECORDED_CELL_FILES = (CONFIG_FILE, METRICS_FILE, LOG_FILE, "config.json", CARD_FILE, ROBUSTNESS_FILE)
TRAINING_OPTIONS = ("model", "preset", "data_dir", "max_train_examples", "max_dev_examples", "max_test_examples",
                    "min_train_words", "max_length", "epochs", "batch_size", "learning_rate", "class_balanced",
                    "adversary", "ascc_steps", "ascc_objective", "eval_steps", "save_steps", "retention_examples",
                    "num_threads")
MODEL_METRICS = ("test_accuracy", "dev_accuracy", "retention_cka", "retention_mi_nce", "train_seconds")
ATTACK_METRICS = ("clean_accuracy", "robust_accuracy", "attack_success_rate", "mean_perturbed_fraction",
                  "mean_queries", "seconds", "outside_surface")


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    seed: int
    directory: Path

    @property
    def name(self) -> str:
        return f"{self.task}-{self.method}-s{self.seed}"

    @property
    def attack_dir(self) -> Path:
        return self.directory / ATTACKS_DIR


def method_and_adversary(entry: str) -> tuple[str, str | None]:
    """A grid's method entry: METHOD, or METHOD+ADVERSARY (``rift+discrete``) for an adversarial method trained
    against another adversary than the bench's."""
    method, _, adversary = entry.partition("+")
    return method, adversary or None


def grid(args: BenchArguments) -> list[Cell]:
    # names are checked with the options (BenchArguments.check); here what needs the registries
    for entry in args.methods:
        method, adversary = method_and_adversary(entry)
        if adversary is not None and not OBJECTIVES[method].uses_adversary:
            raise RiftError(f"method {entry}: {method} trains on clean inputs only; adversaries go with "
                            f"{', '.join(name for name, cls in OBJECTIVES.items() if cls.uses_adversary)}")
    cells_dir = Path(args.output_dir) / CELLS_DIR
    return [Cell(task, method, seed, cells_dir / f"{task}-{method}-s{seed}")
            for task in args.task for method in args.methods for seed in args.seeds]


def training_arguments(args: BenchArguments, cell: Cell) -> TrainingArguments:
    values = {name: getattr(args, name) for name in TRAINING_OPTIONS if getattr(args, name) is not None}
    method, adversary = method_and_adversary(cell.method)
    values |= dict(task=cell.task, method=method, seed=cell.seed, output_dir=str(cell.directory), resume=True,
                   config=args.train_config)
    if adversary is not None:
        values["adversary"] = adversary
    return build_config(TrainingArguments, values, PRESETS)


def attack_groups(args: BenchArguments) -> list[tuple[list[str], int | None]]:
    """The attacks as (names, sample size) calls: genetic may attack fewer examples than the rest."""
    genetic = args.genetic_num_examples or args.num_examples
    groups = [([name for name in args.attacks if name != "genetic"], args.num_examples),
              (["genetic"] if "genetic" in args.attacks else [], genetic)]
    return [(names, n) for names, n in groups if names]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def pending_attacks(args: BenchArguments, cell: Cell) -> list[tuple[list[str], int | None]]:
    done = read_json(cell.attack_dir / "results.json").get("attacks", {})
    pending = []
    for names, n in attack_groups(args):
        todo = [name for name in names if name not in done or n not in (None, done[name]["num_examples"])]
        if todo:
            pending.append((todo, n))
    return pending


def attack_arguments(train_args: TrainingArguments, args: BenchArguments, cell: Cell, names: list[str],
                     num_examples: int | None) -> AttackArguments:
    """The attack sees the data exactly as the model was trained on it (files, columns, max length, seed; under a
    protocol, the protocol's max length), and runs in the training's precision: Accelerate's state is process-wide
    and cannot change within one bench."""
    data = {field.name: getattr(train_args, field.name) for field in dataclasses.fields(DataArguments)}
    if args.protocol:
        del data["max_length"]
    return AttackArguments(**data | dict(config=None), model=str(cell.directory), attack=names,
                           output_dir=str(cell.attack_dir), split=args.split, num_examples=num_examples,
                           sample_seed=args.attack_seed, mixed_precision=train_args.mixed_precision,
                           population=args.population, generations=args.generations, protocol=args.protocol)


def run_cell(args: BenchArguments, cell: Cell, log) -> bool:
    """Train and attack what the cell still lacks; False when it was already finished."""
    train_args = training_arguments(args, cell)
    trained = (cell.directory / METRICS_FILE).exists()
    if trained:
        changed = changed_options(train_args, cell.directory / CONFIG_FILE)
        if changed:
            raise RiftError(f"{cell.directory} was trained with other options ({', '.join(changed)}); "
                            "choose another --output-dir")
    pending = pending_attacks(args, cell)
    if trained and not pending:
        return False
    if not trained:
        Trainer(train_args, log=log).train()
    elif not any((cell.directory / name).exists() for name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)):
        raise RiftError(f"{cell.directory} is a record without weights (rift record): it cannot be attacked with "
                        f"{', '.join(name for names, _ in pending for name in names)}; train it again in another "
                        "--output-dir")
    for names, num_examples in pending:
        attack_results(attack_arguments(train_args, args, cell, names, num_examples))
    return True


def cell_record(args: BenchArguments, cell: Cell) -> dict:
    metrics = read_json(cell.directory / METRICS_FILE)
    retention = metrics.get("retention", {})
    record = dict(task=cell.task, method=cell.method, seed=cell.seed,
                  directory=str(cell.directory.relative_to(args.output_dir)),
                  test_accuracy=metrics.get("test_accuracy"), dev_accuracy=metrics.get("dev_accuracy"),
                  retention_cka=retention.get("cka"), retention_mi_nce=retention.get("mi_nce"),
                  train_seconds=metrics.get("train_seconds"))
    attacks = read_json(cell.attack_dir / "results.json").get("attacks", {})
    for name in args.attacks:
        summary = attacks.get(name, {})
        per_example = summary.get("seconds_per_example")
        surface = summary.get("outside_training_surface") or {}
        summary = summary | {"seconds": None if per_example is None else per_example * summary["num_examples"],
                             "outside_surface": surface.get("share_with_change_outside")}
        record |= {f"{name}/{key}": summary.get(key) for key in ATTACK_METRICS}
        n, robust = summary.get("num_examples"), summary.get("robust_accuracy")
        if n and robust is not None:  # results written before intervals were recorded have the accuracy only
            num_robust = summary.get("num_robust", round(robust * n))
            record |= {f"{name}/num_examples": n, f"{name}/num_robust": num_robust,
                       f"{name}/robust_accuracy_interval": list(wilson_interval(num_robust, n))}
    return record


def metric_names(attacks: list[str]) -> list[str]:
    return [*MODEL_METRICS, *(f"{name}/{key}" for name in attacks for key in ATTACK_METRICS)]


def mean_std(values: list) -> dict:
    values = [v for v in values if v is not None]
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def summarize_grid(records: list[dict], attacks: list[str]) -> list[dict]:
    """Mean and (sample) standard deviation over seeds of every metric, per task x method, in grid order. Robust
    accuracy also gets the 95% Wilson interval of the attacked examples pooled over seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["task"], record["method"]), []).append(record)
    summary = []
    for (task, method), rows in groups.items():
        metrics = {name: mean_std([r.get(name) for r in rows]) for name in metric_names(attacks)}
        for attack in attacks:
            counted = [r for r in rows if r.get(f"{attack}/num_examples")]
            if counted:
                robust = sum(r[f"{attack}/num_robust"] for r in counted)
                metrics[f"{attack}/robust_accuracy"]["interval"] = list(
                    wilson_interval(robust, sum(r[f"{attack}/num_examples"] for r in counted)))
        summary.append({"task": task, "method": method, "seeds": [r["seed"] for r in rows], "metrics": metrics})
    return summary


def paired_comparisons(args: BenchArguments, records: list[dict]) -> list[dict]:
    return compare_methods(records, args.methods, args.attacks, lambda record, attack: (
        examples_file(Path(args.output_dir) / record["directory"] / ATTACKS_DIR, attack)))


def write_results(args: BenchArguments, records: list[dict], summary: list[dict], comparisons: list[dict]) -> str:
    """results.json, results.csv and results.md; returns the Markdown."""
    out = Path(args.output_dir)
    results = {"settings": dataclasses.asdict(args), "cells": records, "summary": summary, "comparisons": comparisons}
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    names = metric_names(args.attacks)
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["task", "method", "seeds", *(f"{n}_{s}" for n in names for s in ("mean", "std"))])
        for row in summary:
            stats = [row["metrics"][n][s] for n in names for s in ("mean", "std")]
            writer.writerow([row["task"], row["method"], len(row["seeds"]), *("" if v is None else v for v in stats)])
    markdown = to_markdown(grid_tables(results))
    (out / "results.md").write_text(markdown, encoding="utf-8")
    return markdown


def write_record(bench_dir: Path, destination: Path) -> list[str]:
    """Copy the grid's results and every cell whose training finished, without weights, tokenizer or resume state;
    returns the names of the cells left out because their training had not finished (a record of them could not
    be continued: their resume state stays behind)."""
    cells_dir = bench_dir / CELLS_DIR
    if not cells_dir.is_dir():
        raise RiftError(f"{bench_dir} is not a rift bench folder (no {CELLS_DIR}/ inside)")
    if destination.resolve() == bench_dir.resolve():
        raise RiftError("the record must go to another folder than the bench itself")
    destination.mkdir(parents=True, exist_ok=True)
    for name in RESULTS_FILES:
        if (bench_dir / name).exists():
            shutil.copy2(bench_dir / name, destination / name)
    unfinished = []
    for cell in sorted(path for path in cells_dir.iterdir() if path.is_dir()):
        if not (cell / METRICS_FILE).exists():
            unfinished.append(cell.name)
            continue
        target = destination / CELLS_DIR / cell.name
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORDED_CELL_FILES:
            if (cell / name).exists():
                shutil.copy2(cell / name, target / name)
        if (cell / ATTACKS_DIR).is_dir():
            shutil.copytree(cell / ATTACKS_DIR, target / ATTACKS_DIR, dirs_exist_ok=True)
    return unfinished


CELL_NAME = re.compile(r"^(?P<task>[a-z0-9]+)-(?P<method>.+)-s(?P<seed>\d+)$")


def recorded_results(bench_dir: Path) -> dict:
    """The grid's results.json, with every further cell of its folder whose training finished (a study continued
    with other seeds or methods keeps its earlier cells, which the last ``rift bench`` call did not name): its
    tasks, methods and seeds are extended by the cells found, and the summary and comparisons cover them all."""
    saved = read_json(bench_dir / "results.json")
    listed = {cell["directory"] for cell in saved["cells"]}
    found = []
    for path in sorted((bench_dir / CELLS_DIR).iterdir()) if (bench_dir / CELLS_DIR).is_dir() else []:
        match = CELL_NAME.match(path.name)
        if match and (path / METRICS_FILE).exists() and f"{CELLS_DIR}/{path.name}" not in listed:
            found.append((match["task"], match["method"], int(match["seed"])))
    if not found:
        return saved
    names = {f.name for f in dataclasses.fields(BenchArguments)}
    args = BenchArguments(**{k: v for k, v in saved["settings"].items() if k in names} | {"output_dir": str(bench_dir)})
    extend = lambda names, more: names + [n for n in dict.fromkeys(more) if n not in names]  # noqa: E731
    args = dataclasses.replace(args, task=extend(list(args.task), [t for t, _, _ in found]),
                               methods=extend(list(args.methods), [m for _, m, _ in found]),
                               seeds=extend(list(args.seeds), [s for _, _, s in found]))
    extra = {(t, m, s) for t, m, s in found}
    records = saved["cells"] + [cell_record(args, cell) for cell in grid(args)
                                if (cell.task, cell.method, cell.seed) in extra]
    return {"settings": dataclasses.asdict(args), "cells": records, "summary": summarize_grid(records, args.attacks),
            "comparisons": paired_comparisons(args, records)}


def run_bench(args: BenchArguments) -> dict:
    cells = grid(args)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    records = []
    for number, cell in enumerate(cells, 1):
        started = time.perf_counter()
        ran = run_cell(args, cell, log=lambda message: print(message, file=sys.stderr))
        status = f"done in {time.perf_counter() - started:.1f} s" if ran else "skipped (finished before)"
        print(f"[{number}/{len(cells)}] {cell.name}: {status}", flush=True)
        records.append(cell_record(args, cell))
    summary = summarize_grid(records, args.attacks)
    comparisons = paired_comparisons(args, records)
    markdown = write_results(args, records, summary, comparisons)
    print(markdown)
    print(f"results written to {', '.join(str(Path(args.output_dir) / name) for name in RESULTS_FILES)}")
    return {"cells": records, "summary": summary, "comparisons": comparisons}
