"""rift's Python API: what the ``rift`` commands do, as functions that take the commands' options objects (or the
same options as keyword arguments) and return typed results.

    import rift

    trained = rift.train(task="sst2", method="rift", output_dir="runs/sst2-rift", max_train_examples=2000, epochs=1)
    attacked = rift.attack(model=trained.output_dir, attack=["pwws"], output_dir="runs/sst2-rift/attacks",
                           num_examples=100)
    attacked.attacks["pwws"].robust_accuracy

The command line is a thin layer over these functions: the defaults, presets and checks are the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rift.arguments import AttackArguments, CertifyArguments, EvalArguments, TrainingArguments
from rift.config import RESOLVED, build_config, check_output_path, default_value
from rift.errors import RiftError
from rift.files import folder_lock, is_main_process, write_atomic
from rift.presets import PRESETS
from rift.reporting.model_card import record_attacks, record_certification
from rift.run_folder import CONFIG_FILE


@dataclass(frozen=True)
class TrainResult:
    """A finished training run: its checkpoint folder (a plain Hugging Face model) and ``metrics.json``."""

    output_dir: Path
    dev_accuracy: float | None
    test_accuracy: float | None
    metrics: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class AttackSummary:
    """One attack on one sample: accuracies with their 95% Wilson intervals, and the attack's cost."""

    name: str
    num_examples: int
    clean_accuracy: float | None
    robust_accuracy: float | None
    robust_accuracy_interval: tuple[float, float] | None
    attack_success_rate: float | None
    mean_queries: float | None
    seconds_per_example: float | None
    summary: dict[str, Any] = field(repr=False)  # everything results.json holds for this attack

    @classmethod
    def from_summary(cls, name: str, summary: dict[str, Any]) -> AttackSummary:
        interval = summary.get("robust_accuracy_interval")
        return cls(name=name, num_examples=summary["num_examples"], clean_accuracy=summary.get("clean_accuracy"),
                   robust_accuracy=summary.get("robust_accuracy"),
                   robust_accuracy_interval=tuple(interval) if interval else None,
                   attack_success_rate=summary.get("attack_success_rate"), mean_queries=summary.get("mean_queries"),
                   seconds_per_example=summary.get("seconds_per_example"), summary=summary)


@dataclass(frozen=True)
class AttackReport:
    """Every attack run on a model; every attacked example is in ``output_dir/examples_ATTACK.jsonl``."""

    model: str
    output_dir: Path
    attacks: dict[str, AttackSummary]
    results: dict[str, Any] = field(repr=False)  # the content of results.json


@dataclass(frozen=True)
class EvalResult:
    model: str
    task: str
    split: str
    num_examples: int
    accuracy: float
    output: Path  # the JSON file written
    untrained_head: list[str] | None = None  # the head's weights drawn at random (--allow-untrained-head)


def _arguments(cls, args, options: dict[str, Any], presets=None):
    """The options object built exactly as the command line builds it (defaults < preset < ``config`` file < the
    options given), from keyword arguments or from an object's values that differ from the defaults."""
    if args is not None:
        if options:
            raise RiftError(f"give either a {cls.__name__} or keyword options, not both ({', '.join(options)})")
        if not isinstance(args, cls):
            raise RiftError(f"expected {cls.__name__}, got {type(args).__name__}")
        if getattr(args, RESOLVED, False):  # built by build_config (the command line): final as it is
            return args
        # made by hand: as the command line reads flags, the values set are those that differ from the defaults,
        # and its preset and config file fill in the others
        defaults = {f.name: default_value(f) for f in dataclasses.fields(args)}
        options = {k: v for k, v in dataclasses.asdict(args).items() if v != defaults[k]}
    return build_config(cls, options, presets)


def train(args: TrainingArguments | None = None, **options) -> TrainResult:
    """Fine-tune a model as ``rift train`` does; ``options`` are its flags as keyword arguments."""
    args = _arguments(TrainingArguments, args, options, PRESETS)
    metrics = run_training(args)
    return TrainResult(output_dir=Path(args.output_dir), dev_accuracy=metrics.get("dev_accuracy"),
                       test_accuracy=metrics.get("test_accuracy"), metrics=metrics)


def run_training(args: TrainingArguments, log=print) -> dict:
    """``rift train`` with a resolved ``args``: the run (``rift.training.run``), then its model card; the metrics."""
    from accelerate import PartialState

    from rift.reporting.model_card import write_model_card
    from rift.training.run import train_run

    with writing(args.output_dir, "rift train"):
        metrics = train_run(args, log=log)
        if PartialState().is_main_process:
            write_model_card(Path(args.output_dir))
    return metrics


def writing(folder: str | Path, what: str):
    """The lock of a folder that this process writes (``rift.files.folder_lock``); other processes of a distributed
    launch write nothing there and take none."""
    return folder_lock(folder, what) if is_main_process() else contextlib.nullcontext()


def attack(args: AttackArguments | None = None, **options) -> AttackReport:
    """Attack a classifier as ``rift attack`` does; resumes an interrupted run in the same ``output_dir``."""
    args = _arguments(AttackArguments, args, options)
    results = attack_results(args)
    return AttackReport(model=args.model, output_dir=Path(args.output_dir), results=results,
                        attacks={name: AttackSummary.from_summary(name, summary)
                                 for name, summary in results["attacks"].items()})


def certify(args: CertifyArguments | None = None, **options) -> dict:
    """Certify a smoothed classifier (safer, ranmask) as ``rift certify`` does; the content of its results.json.
    Resumes an interrupted run in the same ``output_dir``."""
    from rift.evaluation.certify_run import run_certify

    args = _arguments(CertifyArguments, args, options)
    with writing(args.output_dir, "rift certify"):
        results = run_certify(args)
    model_dir = Path(args.model)
    if (model_dir / CONFIG_FILE).is_file():  # a checkpoint rift trained: its card says so too
        try:
            with folder_lock(model_dir, "rift certify (the model card)"):
                record_certification(model_dir, results)
        except OSError as error:
            print(f"the model card of {model_dir} was not updated ({error.strerror or error})", file=sys.stderr)
        except RiftError as error:
            print(f"the model card of {model_dir} was not updated: {error}", file=sys.stderr)
    return results


def evaluate(args: EvalArguments | None = None, **options) -> EvalResult:
    """Clean accuracy of a classifier on a split, as ``rift eval`` computes it."""
    import torch

    from rift.data.batching import encode_examples
    from rift.evaluation.accuracy import accuracy, averaged_accuracy
    from rift.evaluation.attack_run import averaged_predictor, scored_classifier

    args = _arguments(EvalArguments, args, options)
    output = eval_output_path(args)
    check_output_path(str(output), "file", "--output")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    task = args.load_task(log=lambda message: print(message, file=sys.stderr), scored_split=args.split)
    model, tokenizer = scored_classifier(args, task)
    items = encode_examples(tokenizer, task.splits[args.split], args.max_length)
    if not items:
        raise RiftError(f"the {args.split} split of {task.name} is empty")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    predictor = averaged_predictor(model, tokenizer, args)  # a model that predicts by averaging is scored so
    score = (accuracy(model, items, pad, args.batch_size) if predictor is None
             else averaged_accuracy(predictor, task.splits[args.split], args.batch_size))
    output.parent.mkdir(parents=True, exist_ok=True)
    result = EvalResult(model=args.model, task=task.name, split=args.split, num_examples=len(items), accuracy=score,
                        output=output, untrained_head=model.rift_untrained_head or None)
    write_atomic(output, json.dumps({k: v for k, v in dataclasses.asdict(result).items() if k != "output"}, indent=2))
    return result


def eval_output_path(args: EvalArguments) -> Path:
    """``--output``, else a file beside a local model folder (the folder the user only asked to read stays
    untouched), else (a Hub model id, the packaged minilm) in the current folder."""
    if args.output:
        return Path(args.output)
    name = f"eval-{args.task}-{args.split}.json"
    local = Path(args.model).expanduser()
    return local.parent / f"{local.name}.{name}" if local.is_dir() else Path(name)


def attack_results(args: AttackArguments) -> dict:
    """Run every attack of ``args`` (``rift.evaluation.attack_run``) and return the content of results.json, on every
    process; a checkpoint rift trained gets the results in its model card too."""
    from accelerate import PartialState

    from rift.evaluation.attack_run import run_attacks

    with writing(args.output_dir, "rift attack"):
        results, args = run_attacks(args)
    model_dir = Path(args.model)
    if PartialState().is_main_process and (model_dir / CONFIG_FILE).is_file():
        # results.json has them whatever happens; the card is a copy, updated by one process at a time (two
        # attacks of one model would otherwise each rewrite robustness.json without the other's results)
        try:
            with folder_lock(model_dir, "rift attack (the model card)"):
                record_attacks(model_dir, {"task": results["task"],
                                           "attacks": {n: results["attacks"][n] for n in args.attack},
                                           "worst_case": results.get("worst_case")}, dataclasses.asdict(args))
        except OSError as error:
            print(f"the model card of {model_dir} was not updated ({error.strerror or error})", file=sys.stderr)
        except RiftError as error:
            print(f"the model card of {model_dir} was not updated: {error}", file=sys.stderr)
    return results
