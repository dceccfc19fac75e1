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
import functools
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from rift.api import attack_results, certify, run_training, writing
from rift.arguments import AttackArguments, BenchArguments, CertifyArguments, DataArguments, TrainingArguments, attack_entry
from rift.config import build_config
from rift.errors import RiftError
from rift.evaluation.records import (
    Cell,
    cell_record,
    grid,
    metric_names,
    paired_comparisons,
    read_json,
    recorded_results,
    summarize_grid,
    write_record,
)
from rift.evaluation.protocols import get_protocol
from rift.files import folder_lock, remove_temporaries, write_atomic
from rift.inputs import check_inputs, fingerprint
from rift.jobs import run_side_by_side, status_line, usable_cpus
from rift.presets import PRESETS
from rift.reporting.tables import grid_tables, to_markdown
from rift.registry import load
from rift.substitutions.base import SOURCE_NAMES
from rift.run_folder import (
    ATTACK_RESULTS_FILE,
    CELL_LOGS_DIR,
    CELLS_DIR,
    CERTIFY_RESULTS_FILE,
    CONFIG_FILE,
    GRID_RESULTS_FILES,
    INPUTS_FILE,
    METRICS_FILE,
    RETRAINED_DIR,
    WEIGHTS_FILE,
    for_split,
)
from rift.training.run import changed_training_options, drop_resume_state

# the options of rift bench that every cell's training takes
TRAINING_OPTIONS = ("model", "preset", "data_dir", "max_train_examples", "max_dev_examples", "max_test_examples",
                    "min_train_words", "max_length", "epochs", "batch_size", "learning_rate", "class_balanced",
                    "adversary", "ascc_steps", "ascc_objective", "eval_steps", "save_steps", "retention_examples",
                    "num_threads", "allow_changed_data")
def training_arguments(args: BenchArguments, cell: Cell) -> TrainingArguments:
    values = {name: getattr(args, name) for name in TRAINING_OPTIONS if getattr(args, name) is not None}
    values |= args.method_options(cell.method)
    values |= dict(task=cell.task, seed=cell.seed, output_dir=str(cell.directory), resume=True,
                   config=args.train_config)
    # the bench's options go to the cells that read them (an arm's own were checked against its components)
    return build_config(TrainingArguments, values, PRESETS, unread="drop")


@dataclass(frozen=True)
class AttackCall:
    """One ``rift attack`` call of a cell: its attacks, their protocol (an entry's @PROTOCOL, else the bench's) and
    sample size (genetic may attack fewer examples than the rest), and the entries they stand for."""

    names: list[str]
    protocol: str | None
    num_examples: int | None
    entries: list[str]


def attack_groups(args: BenchArguments) -> list[AttackCall]:
    """The attacks as calls, one per protocol and sample size; a protocol's call attacks at most the protocol's
    number of examples (TextDefender's 1,000 of a split of 1,821)."""
    groups: dict[tuple[str | None, bool], list[str]] = {}
    for entry in args.attacks:
        name, protocol = attack_entry(entry)
        groups.setdefault((protocol or args.protocol, name == "genetic"), []).append(entry)
    calls = []
    for (protocol, is_genetic), entries in groups.items():
        n = (args.genetic_num_examples or args.num_examples) if is_genetic else args.num_examples
        if protocol is not None and n is not None:
            n = min(n, get_protocol(protocol).max_examples)
        calls.append(AttackCall([attack_entry(entry)[0] for entry in entries], protocol, n, entries))
    return calls


def pending_attacks(args: BenchArguments, cell: Cell) -> list[AttackCall]:
    pending = []
    for call in attack_groups(args):
        done = read_json(cell.attack_folder(call.entries[0]) / ATTACK_RESULTS_FILE).get("attacks", {})
        todo = [(name, entry) for name, entry in zip(call.names, call.entries)
                if name not in done or call.num_examples not in (None, done[name]["num_examples"])]
        if todo:
            pending.append(dataclasses.replace(call, names=[n for n, _ in todo], entries=[e for _, e in todo]))
    return pending


def attack_arguments(train_args: TrainingArguments, args: BenchArguments, cell: Cell, call: AttackCall) -> AttackArguments:
    """The attack sees the data exactly as the model was trained on it (files, columns, max length, seed; under a
    protocol, the protocol's max length), and runs in the training's precision: Accelerate's state is process-wide
    and cannot change within one bench."""
    data = {field.name: getattr(train_args, field.name) for field in dataclasses.fields(DataArguments)}
    data |= train_args.task_options()
    if call.protocol:
        del data["max_length"]
    return build_config(AttackArguments, data | dict(
        config=None, model=str(cell.directory), attack=call.names, output_dir=str(cell.attack_folder(call.entries[0])),
        split=args.split, num_examples=call.num_examples, sample_seed=args.attack_seed,
        mixed_precision=train_args.mixed_precision, population=args.population, generations=args.generations,
        protocol=call.protocol), unread="drop")


def run_cell(args: BenchArguments, cell: Cell, log) -> bool:
    """Train and attack what the cell still lacks; False when it was already finished."""
    with writing(cell.directory, "rift bench"):  # two benches may share a grid, never a cell
        train_args = training_arguments(args, cell)
        trained = (cell.directory / METRICS_FILE).exists()
        if trained:
            changed = changed_training_options(train_args, cell.directory / CONFIG_FILE)
            if changed:
                raise RiftError(f"{cell.directory} was trained with other options ({', '.join(changed)}); "
                                "choose another --output-dir")
            # a finished cell counts only if the files it read still hold the bytes it read
            check_inputs(cell.directory, None, args.allow_changed_data, "the cell")
            for folder in dict.fromkeys(cell.attack_folder(entry) for entry in args.attacks):
                check_inputs(folder, None, args.allow_changed_data, "the cell's attacks")
            check_inputs(cell.certify_dir, None, args.allow_changed_data, "the cell's certificates")
            drop_resume_state(train_args)  # a kill may have come between the metrics and the state's removal
        pending = pending_attacks(args, cell)
        to_certify = certification_pending(args, cell, train_args)
        if trained and not pending and not to_certify:
            return False
        if not trained:
            run_training(train_args, log=log)
        elif not any((cell.directory / name).exists() for name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)):
            if not args.retrain_missing_weights:
                missing = [entry for call in pending for entry in call.entries] + (["rift certify"] if to_certify else [])
                raise RiftError(f"{cell.directory} is a record without weights (rift record): it cannot be attacked or "
                                f"certified ({', '.join(missing)}); pass --retrain-missing-weights to train it again "
                                "and continue it, or train it in another --output-dir")
            restore_weights(train_args, cell.directory, log)
        for call in pending:
            attack_results(attack_arguments(train_args, args, cell, call))
        if to_certify:
            certify(certify_arguments(train_args, args, cell))
        return True


def recorded_weights(cell: Path) -> dict[str, set[str]]:
    """The fingerprints of the weights that a recorded cell's results came from: those rift record kept, else (a
    record made before it kept them) those that its attacks and certificates read."""
    kept = read_json(cell / WEIGHTS_FILE)
    if kept:
        return {name: {value} for name, value in kept.items()}
    read: dict[str, set[str]] = {}
    for inputs in sorted(cell.glob(f"*/{INPUTS_FILE}")):
        for path, value in read_json(inputs).get("files", {}).items():
            if Path(path).parent.name == cell.name and path.endswith(".safetensors"):
                read.setdefault(Path(path).name, set()).add(value)
    return read


def restore_weights(train_args: TrainingArguments, cell: Path, log) -> None:
    """Train a recorded cell again (``rift record`` kept no weights) in ``cell/retrained/`` and move the weights and
    tokenizer in, but only if they are, byte for byte, the weights that the cell's results came from. Training is
    deterministic for the same options, data, seed and thread count on the same software and kind of CPU, so a study
    can go on where its weights are gone (another machine); anything else would add another model's attacks to the
    recorded ones, and is refused. The cell's own record (metrics, log, options, card) stays as it was."""
    expected = recorded_weights(cell)
    if not expected:
        raise RiftError(f"{cell} records no fingerprint of its weights, so weights trained again could not be checked "
                        "against them; train it again in another --output-dir")
    scratch = cell / RETRAINED_DIR
    log(f"{cell.name}: a record without weights; training it again in {scratch} (resumable)")
    run_training(dataclasses.replace(train_args, output_dir=str(scratch)), log=log)
    differ = sorted(name for name, values in expected.items()
                    if not (scratch / name).is_file() or {fingerprint(scratch / name)} != values)
    if differ:
        shutil.rmtree(scratch)
        raise RiftError(f"{cell}: training it again gave other weights ({', '.join(differ)}) than those its recorded "
                        "results came from (another torch version, kind of CPU or thread count?); its attacks cannot "
                        "continue on them: train it again in another --output-dir")
    for path in sorted(scratch.iterdir()):
        if path.is_file() and not (cell / path.name).exists():
            os.replace(path, cell / path.name)
    shutil.rmtree(scratch)
    log(f"{cell.name}: the weights trained again are those its results came from ({', '.join(sorted(expected))})")


def cell_finished(args: BenchArguments, cell: Cell) -> bool:
    """Whether the cell is trained and has every requested attack and certificate (``run_cell`` checks it further)."""
    return ((cell.directory / METRICS_FILE).exists() and not pending_attacks(args, cell)
            and not certification_pending(args, cell, training_arguments(args, cell)))


def certification_pending(args: BenchArguments, cell: Cell, train_args: TrainingArguments) -> bool:
    """Whether the cell is to be certified (--certify-num-examples, a smoothing defence) and has not been on as many
    examples."""
    if args.certify_num_examples is None or not load("objective", train_args.method).certifiable:
        return False
    done = read_json(cell.certify_dir / CERTIFY_RESULTS_FILE)
    return done.get("num_examples") != args.certify_num_examples


def certify_arguments(train_args: TrainingArguments, args: BenchArguments, cell: Cell) -> CertifyArguments:
    """rift certify on the data exactly as the model was trained on it, the first examples of the attacks' sample."""
    data = {field.name: getattr(train_args, field.name) for field in dataclasses.fields(DataArguments)}
    # the certificate covers the substitutions of every attack the bench runs (pwws-wordnet's WordNet too)
    sources = {load("attack", attack_entry(entry)[0]).synonyms or AttackArguments.synonyms for entry in args.attacks}
    synonyms = ",".join(name for name in SOURCE_NAMES if name in sources)
    return build_config(CertifyArguments, data | train_args.task_options() | dict(
        config=None, model=str(cell.directory), output_dir=str(cell.certify_dir), split=args.split,
        num_examples=args.certify_num_examples, sample_seed=args.attack_seed, synonyms=synonyms), unread="drop")


def write_results(args: BenchArguments, records: list[dict], summary: list[dict], comparisons: list[dict]) -> str:
    """results.json, results.csv and results.md; returns the Markdown."""
    out = Path(args.output_dir)
    remove_temporaries(out)  # a grid's tables are written by any of the benches sharing it, under no lock
    results = {"settings": dataclasses.asdict(args), "arms": args.arm_options(), "cells": records, "summary": summary,
               "comparisons": comparisons}
    json_file, csv_file, markdown_file = (out / for_split(name, args.split) for name in GRID_RESULTS_FILES)
    write_atomic(json_file, json.dumps(results, indent=2))
    names = metric_names(args.attacks)
    stream = io.StringIO(newline="")
    writer = csv.writer(stream)
    writer.writerow(["task", "method", "seeds", *(f"{n}_{s}" for n in names for s in ("mean", "std"))])
    for row in summary:
        stats = [row["metrics"][n][s] for n in names for s in ("mean", "std")]
        writer.writerow([row["task"], row["method"], len(row["seeds"]), *("" if v is None else v for v in stats)])
    write_atomic(csv_file, stream.getvalue())
    markdown = to_markdown(grid_tables(results))
    write_atomic(markdown_file, markdown)
    return markdown


def record(bench_dir: Path, destination: Path) -> list[str]:
    """``rift record``: the grid's finished cells copied without weights (``write_record``), then the tables of
    every split of the destination written again over all of its cells, so that a study recorded a cell at a time
    keeps the tables of all of them; returns the cells left out (training unfinished)."""
    unfinished = write_record(bench_dir, destination)
    with folder_lock(destination, "rift record"):
        for path in sorted(destination.glob(for_split(GRID_RESULTS_FILES[0], "*"))) + [destination / GRID_RESULTS_FILES[0]]:
            if not path.is_file():
                continue
            split = read_json(path).get("settings", {}).get("split", "test")
            results = recorded_results(destination, split)
            names = {f.name for f in dataclasses.fields(BenchArguments)}
            args = BenchArguments(**{k: v for k, v in results["settings"].items() if k in names}
                                  | {"output_dir": str(destination)})
            write_results(args, results["cells"], results["summary"], results["comparisons"])
    return unfinished


def run_bench(args: BenchArguments) -> dict:
    cells = grid(args)
    Path(args.output_dir, CELLS_DIR).mkdir(parents=True, exist_ok=True)
    side_by_side = args.jobs > 1 and len(cells) > 1
    later = []
    for number, cell in enumerate(cells, 1):
        if side_by_side and not cell_finished(args, cell):  # a finished cell is checked here, without a process
            later.append((number, cell))
            continue
        started = time.perf_counter()
        ran = run_cell(args, cell, log=lambda message: print(message, file=sys.stderr))
        print(status_line(number, len(cells), cell.name, ran, time.perf_counter() - started), flush=True)
    if later:
        threads = args.num_threads or max(1, usable_cpus() // args.jobs)
        run_side_by_side(functools.partial(run_cell, dataclasses.replace(args, jobs=1, num_threads=threads)), later,
                         len(cells), args.jobs, threads, Path(args.output_dir) / CELL_LOGS_DIR)
    records = [cell_record(args, cell) for cell in cells]
    summary = summarize_grid(records, args.attacks)
    comparisons = paired_comparisons(args, records)
    markdown = write_results(args, records, summary, comparisons)
    print(markdown)
    print(f"results written to "
          f"{', '.join(str(Path(args.output_dir) / for_split(name, args.split)) for name in GRID_RESULTS_FILES)}")
    return {"cells": records, "summary": summary, "comparisons": comparisons}
