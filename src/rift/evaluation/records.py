"""The record format of a ``rift bench`` grid: where its cells live, what a cell's record holds, the summary over
seeds and the paired comparisons built from them, and ``rift record``'s copy of a grid without weights.

A grid folder holds ``cells/TASK-METHOD-sSEED/`` (a ``rift train`` run with the ``rift attack`` run in
``attacks/``) and ``results.{json,csv,md}``. ``rift bench`` writes it, ``rift report`` reads it, and a record made by
``rift record`` keeps the same layout without weights, so every command that reads a grid reads a record too.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from rift.arguments import BenchArguments, attack_entry, method_entry
from rift.attacks.results import WORST_CASE, held_by_all, text_attacks, with_worst_case, worst_case
from rift.errors import RiftError
from rift.evaluation.paired import compare_methods
from rift.evaluation.robustness import compressed, examples_file, read_results
from rift.files import TEMPORARY, copy_atomic, folder_lock, write_atomic
from rift.objectives import OBJECTIVES
from rift.registry import names
from rift.run_folder import (
    ATTACK_RESULTS_FILE,
    ATTACKS_DIR,
    CARD_FILE,
    CERTIFIED_DIR,
    CERTIFY_RESULTS_FILE,
    CELLS_DIR,
    CONFIG_FILE,
    GRID_RESULTS_FILE,
    GRID_RESULTS_FILES,
    INPUTS_FILE,
    LOCK_FILE,
    LOG_FILE,
    METRICS_FILE,
    ROBUSTNESS_FILE,
    WEIGHTS_FILE,
    for_split,
)
from rift.inputs import fingerprint
from rift.statistics import wilson_interval

# what a recorded cell keeps besides attacks/: the training's options, metrics and log, the model's config (its
# label names, for the report), and its model card with the attack results it shows
# the metrics first: a destination cell without them is a copy that a kill stopped before it began
RECORDED_CELL_FILES = (METRICS_FILE, CONFIG_FILE, LOG_FILE, "config.json", CARD_FILE, ROBUSTNESS_FILE, INPUTS_FILE,
                       WEIGHTS_FILE)

MODEL_METRICS = ("test_accuracy", "dev_accuracy", "retention_cka", "retention_mi_nce", "train_seconds",
                 "certified_accuracy")
ATTACK_METRICS = ("clean_accuracy", "robust_accuracy", "attack_success_rate", "mean_perturbed_fraction",
                  "mean_queries", "seconds", "outside_surface")


@dataclass(frozen=True)
class Cell:
    """One task x method x seed of a grid: its training run folder, with the attack run on the test split in
    ``attacks/`` and on another split in ``attacks-SPLIT/``."""

    task: str
    method: str
    seed: int
    directory: Path
    split: str = "test"  # the split its attacks run on

    @property
    def name(self) -> str:
        return f"{self.task}-{self.method}-s{self.seed}"

    @property
    def attack_dir(self) -> Path:
        return self.directory / for_split(ATTACKS_DIR, self.split)

    @property
    def certify_dir(self) -> Path:
        """Where ``rift certify`` runs on a cell trained with a smoothing defence: ``certified/`` or
        ``certified-SPLIT/``."""
        return self.directory / for_split(CERTIFIED_DIR, self.split)

    def attack_folder(self, entry: str) -> Path:
        """Where the attack of a bench's ``--attacks`` entry runs: ``attacks/``, or ``attacks@PROTOCOL/`` for
        ATTACK@PROTOCOL (an attack folder holds the results of one protocol)."""
        return self.directory / attack_folder_name(entry, self.split)


def attack_folder_name(entry: str, split: str) -> str:
    _, protocol = attack_entry(entry)
    return for_split(ATTACKS_DIR if protocol is None else f"{ATTACKS_DIR}@{protocol}", split)


def grid(args: BenchArguments) -> list[Cell]:
    # names are checked with the options (BenchArguments.check); here what needs the registries
    for entry in args.methods:
        method, adversary = method_entry(entry)
        if adversary is not None and not OBJECTIVES[method].uses_adversary:
            raise RiftError(f"method {entry}: {method} trains on clean inputs only; adversaries go with "
                            f"{', '.join(name for name, cls in OBJECTIVES.items() if cls.uses_adversary)}")
    cells_dir = Path(args.output_dir) / CELLS_DIR
    return [Cell(task, method, seed, cells_dir / f"{task}-{method}-s{seed}", args.split)
            for task in args.task for method in args.methods for seed in args.seeds]


def read_json(path: Path) -> dict:
    """The JSON object in ``path``, {} if there is none; one line if the file is damaged."""
    if not path.exists():
        return {}
    try:
        read = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise RiftError(f"{path} is damaged ({str(error).splitlines()[0][:120]}); restore it, or delete it to redo "
                        "what wrote it") from None
    if not isinstance(read, dict):
        raise RiftError(f"{path} is damaged (not a JSON object); restore it, or delete it to redo what wrote it")
    return read


def cell_record(args: BenchArguments, cell: Cell) -> dict:
    metrics = read_json(cell.directory / METRICS_FILE)
    retention = metrics.get("retention", {})
    record = dict(task=cell.task, method=cell.method, seed=cell.seed,
                  directory=str(cell.directory.relative_to(args.output_dir)),
                  test_accuracy=metrics.get("test_accuracy"), dev_accuracy=metrics.get("dev_accuracy"),
                  retention_cka=retention.get("cka"), retention_mi_nce=retention.get("mi_nce"),
                  train_seconds=metrics.get("train_seconds"))
    # each entry's summary, from the folder of its protocol (ATTACK@PROTOCOL) or the cell's attacks/
    attacks = {entry: read_json(cell.attack_folder(entry) / ATTACK_RESULTS_FILE).get("attacks", {}).get(
        attack_entry(entry)[0], {}) for entry in args.attacks}
    on_texts = text_attacks(args.attacks)
    if len(on_texts) > 1:  # over the grid's own attacks, whichever others the cell's folders hold
        worst = worst_case({entry: read_results(examples_file(cell.attack_folder(entry), attack_entry(entry)[0]))
                            for entry in on_texts})
        attacks = attacks | {WORST_CASE: worst or {}}
    for name in with_worst_case(args.attacks):
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
    certified = read_json(cell.certify_dir / CERTIFY_RESULTS_FILE)
    if certified:  # a lower bound beside the attacks', on the first examples of their sample
        n = certified["num_examples"]
        count = round(certified["certified_accuracy"] * n)
        record |= {"certified_accuracy": certified["certified_accuracy"], "certified/num_examples": n,
                   "certified/num_certified": count,
                   "certified_accuracy_interval": list(wilson_interval(count, n))}
    return record


def metric_names(attacks: list[str]) -> list[str]:
    """Every metric of a cell record: the model's, then each attack's, the worst case over them first."""
    return [*MODEL_METRICS, *(f"{name}/{key}" for name in with_worst_case(attacks) for key in ATTACK_METRICS)]


def mean_std(values: list) -> dict:
    values = [v for v in values if v is not None]
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def summarize_grid(records: list[dict], attacks: list[str]) -> list[dict]:
    """Mean and (sample) standard deviation over seeds of every metric, per task x method, in grid order. Robust
    accuracy (the worst case's too) and certified accuracy also get the 95% Wilson interval of the examples pooled
    over seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["task"], record["method"]), []).append(record)
    summary = []
    for (task, method), rows in groups.items():
        metrics = {name: mean_std([r.get(name) for r in rows]) for name in metric_names(attacks)}
        for attack in with_worst_case(attacks):
            counted = [r for r in rows if r.get(f"{attack}/num_examples")]
            if counted:
                robust = sum(r[f"{attack}/num_robust"] for r in counted)
                metrics[f"{attack}/robust_accuracy"]["interval"] = list(
                    wilson_interval(robust, sum(r[f"{attack}/num_examples"] for r in counted)))
        certified = [r for r in rows if r.get("certified/num_examples")]
        if certified:
            metrics["certified_accuracy"]["interval"] = list(wilson_interval(
                sum(r["certified/num_certified"] for r in certified), sum(r["certified/num_examples"] for r in certified)))
        summary.append({"task": task, "method": method, "seeds": [r["seed"] for r in rows], "metrics": metrics})
    return summary


def paired_comparisons(args: BenchArguments, records: list[dict]) -> list[dict]:
    def held(record: dict, attack: str) -> dict[int, bool]:
        cell = Path(args.output_dir) / record["directory"]
        entries = text_attacks(args.attacks) if attack == WORST_CASE else [attack]
        return held_by_all({entry: read_results(examples_file(cell / attack_folder_name(entry, args.split),
                                                              attack_entry(entry)[0])) for entry in entries})

    return compare_methods(records, args.methods, with_worst_case(args.attacks), held)


def write_record(bench_dir: Path, destination: Path) -> list[str]:
    """Copy the grid's results and every cell whose training finished, without weights, tokenizer or resume state;
    returns the names of the cells left out because their training had not finished (a record of them could not
    be continued: their resume state stays behind). A cell the destination holds already is updated only if it is
    the same run (the same metrics.json, which its training wrote once); another run there is refused before
    anything is copied."""
    cells_dir = bench_dir / CELLS_DIR
    if not cells_dir.is_dir():
        raise RiftError(f"{bench_dir} is not a rift bench folder (no {CELLS_DIR}/ inside)")
    if destination.resolve() == bench_dir.resolve():
        raise RiftError("the record must go to another folder than the bench itself")
    with folder_lock(destination, "rift record"):
        return _copy_record(cells_dir, bench_dir, destination)


def other_run(cell: Path, recorded: Path) -> str | None:
    """What tells the recorded cell from the run in ``cell``, None if it is the same run: the same metrics (written
    once, when its training finished), options and fingerprints of what it read, where both keep them."""
    if not (recorded / METRICS_FILE).is_file():  # empty: a record killed before its first copy into it
        return METRICS_FILE if any(path.is_file() and not path.match(TEMPORARY) and path.name != LOCK_FILE
                                   for path in recorded.rglob("*")) else None
    for name in (METRICS_FILE, CONFIG_FILE, INPUTS_FILE):
        if (cell / name).is_file() and (recorded / name).is_file() and \
                (cell / name).read_bytes() != (recorded / name).read_bytes():
            return name
    return None


def _copy_record(cells_dir: Path, bench_dir: Path, destination: Path) -> list[str]:
    finished = [cell for cell in sorted(path for path in cells_dir.iterdir() if path.is_dir())
                if (cell / METRICS_FILE).exists()]
    for cell in finished:
        target = destination / CELLS_DIR / cell.name
        differ = other_run(cell, target) if target.exists() else None
        if differ:
            raise RiftError(f"{target} holds another run than {cell} (their {differ} differ); record into "
                            "another folder")
    for name in GRID_RESULTS_FILES:  # the tables of every split attacked
        for path in sorted(bench_dir.glob(for_split(name, "*"))) + [bench_dir / name]:
            if path.is_file():
                copy_atomic(path, destination / path.name)
    unfinished = [cell.name for cell in sorted(path for path in cells_dir.iterdir() if path.is_dir())
                  if cell not in finished]
    for cell in finished:
        target = destination / CELLS_DIR / cell.name
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORDED_CELL_FILES:
            if (cell / name).exists():
                copy_atomic(cell / name, target / name)
        weights = weight_fingerprints(cell)
        if weights:
            write_atomic(target / WEIGHTS_FILE, json.dumps(weights, indent=2))
        # attacks/, attacks-SPLIT/ and the protocols' attacks@PROTOCOL[-SPLIT]/; certified/ and certified-SPLIT/
        for attacks in [cell / ATTACKS_DIR, *sorted(path for path in cell.glob(f"{ATTACKS_DIR}[-@]*") if path.is_dir()),
                        *sorted(path for path in cell.glob(f"{CERTIFIED_DIR}*") if path.is_dir())]:
            if attacks.is_dir():
                copy_attacks(attacks, target / attacks.name)
    return unfinished


def weight_fingerprints(cell: Path) -> dict[str, str]:
    """The fingerprint of each weight file of a trained cell (none in a record)."""
    return {path.name: fingerprint(path) for path in sorted(cell.glob("*.safetensors"))}


def copy_attacks(source: Path, target: Path) -> None:
    """An attack folder copied with its per-example results gzip-compressed (a tenth of their size; deterministic
    bytes, no name or time in the header), whichever form the source holds them in."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name == LOCK_FILE or path.match(TEMPORARY):  # an attack still running there writes them
            continue
        if path.is_dir():
            copy_attacks(path, target / path.name)
        elif path.name.startswith("examples_") and path.suffix == ".jsonl":
            write_atomic(compressed(target / path.name), gzip.compress(path.read_bytes(), mtime=0))
            (target / path.name).unlink(missing_ok=True)  # an uncompressed copy from an earlier record
        else:
            copy_atomic(path, target / path.name)


def study_order(methods: list[str], arms: dict) -> list[str]:
    """The methods of a study recorded a call at a time, in an order that does not depend on which call came last:
    registered methods in registration order (standard first, the baseline of every paired difference), then the
    arms in their arms file's order, then any other name. Each later method is compared with each earlier one."""
    registered, arm_names = names("objective"), list(arms)
    return sorted(methods, key=lambda m: (0, registered.index(m), "") if m in registered
                  else (1, arm_names.index(m), "") if m in arm_names else (2, 0, m))


CELL_NAME = re.compile(r"^(?P<task>[a-z0-9]+)-(?P<method>.+)-s(?P<seed>\d+)$")


def recorded_results(bench_dir: Path, split: str = "test") -> dict:
    """The grid's results.json (``results-SPLIT.json`` for its attacks on another split), with every further cell of
    its folder whose training finished (a study continued with other seeds or methods keeps its earlier cells, which
    the last ``rift bench`` call did not name): its tasks, methods and seeds are extended by the cells found, and
    the summary and comparisons cover them all."""
    saved = read_json(bench_dir / for_split(GRID_RESULTS_FILE, split))
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
    methods = study_order(extend(list(args.methods), [m for _, m, _ in found]), saved.get("arms", {}))
    args = dataclasses.replace(args, task=extend(list(args.task), [t for t, _, _ in found]), methods=methods,
                               seeds=extend(list(args.seeds), [s for _, _, s in found]))
    extra = {(t, m, s) for t, m, s in found}
    records = saved["cells"] + [cell_record(args, cell) for cell in grid(args)
                                if (cell.task, cell.method, cell.seed) in extra]
    records.sort(key=lambda record: (args.task.index(record["task"]), methods.index(record["method"]),
                                     args.seeds.index(record["seed"])))
    return {"settings": dataclasses.asdict(args), "arms": saved.get("arms", {}), "cells": records,
            "summary": summarize_grid(records, args.attacks),
            "comparisons": paired_comparisons(args, records)}
