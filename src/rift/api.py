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

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rift.arguments import AttackArguments, EvalArguments, TrainingArguments
from rift.config import RESOLVED, build_config, check_output_path, default_value
from rift.errors import RiftError
from rift.presets import PRESETS
from rift.reporting.model_card import record_attacks
from rift.run_folder import ATTACK_CONFIG_FILE, ATTACK_RESULTS_FILE, CONFIG_FILE


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
class AttackResult:
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
        defaults = {f.name: default_value(f) for f in dataclasses.fields(cls)}
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

    metrics = train_run(args, log=log)
    if PartialState().is_main_process:
        write_model_card(Path(args.output_dir))
    return metrics


def attack(args: AttackArguments | None = None, **options) -> AttackResult:
    """Attack a classifier as ``rift attack`` does; resumes an interrupted run in the same ``output_dir``."""
    args = _arguments(AttackArguments, args, options)
    results = attack_results(args)
    return AttackResult(model=args.model, output_dir=Path(args.output_dir), results=results,
                        attacks={name: AttackSummary.from_summary(name, summary)
                                 for name, summary in results["attacks"].items()})


def evaluate(args: EvalArguments | None = None, **options) -> EvalResult:
    """Clean accuracy of a classifier on a split, as ``rift eval`` computes it."""
    import torch

    from rift.evaluation.accuracy import accuracy
    from rift.data.batching import encode_examples

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
    score = accuracy(model, items, pad, args.batch_size)
    output.parent.mkdir(parents=True, exist_ok=True)
    result = EvalResult(model=args.model, task=task.name, split=args.split, num_examples=len(items), accuracy=score,
                        output=output)
    output.write_text(json.dumps({k: v for k, v in dataclasses.asdict(result).items() if k != "output"}, indent=2))
    return result


def scored_classifier(args: EvalArguments | AttackArguments, task):
    """The classifier that ``rift eval`` or ``rift attack`` scores, and its tokenizer, refused when its labels are
    not the task's."""
    from rift.models import check_label_names, load_classifier, load_tokenizer

    model = load_classifier(args.model, trust_remote_code=args.trust_remote_code)
    if model.config.num_labels != task.num_labels:
        raise RiftError(f"model {args.model} predicts {model.config.num_labels} labels, task {task.name} has {task.num_labels}")
    check_label_names(model, args.model, task.label_names, args.allow_label_mismatch)
    return model, load_tokenizer(args.model, args.trust_remote_code)


def eval_output_path(args: EvalArguments) -> Path:
    """``--output``, else a file beside a local model folder (the folder the user only asked to read stays
    untouched), else (a Hub model id, the packaged minilm) in the current folder."""
    if args.output:
        return Path(args.output)
    name = f"eval-{args.task}-{args.split}.json"
    local = Path(args.model).expanduser()
    return local.parent / f"{local.name}.{name}" if local.is_dir() else Path(name)


# options that may change between an interrupted attack run and its continuation; num_examples too, since every
# record is keyed by its example's index and each summary covers exactly its own sample (rift bench runs genetic
# on fewer examples than the other attacks, into the same folder); output_dir, since a folder may be moved or copied
ATTACK_RESUMABLE_CHANGES = {"attack", "batch_size", "num_threads", "config", "num_examples", "output_dir"}


def check_attack_output(args: AttackArguments, output_dir: Path) -> None:
    """Refuse to mix results of different settings in one folder; save the settings beside the results."""
    from rift.config import changed_options, save_config

    saved_path = output_dir / ATTACK_CONFIG_FILE
    changed = changed_options(args, saved_path, ATTACK_RESUMABLE_CHANGES)
    if saved_path.exists() and changed:
        raise RiftError(f"{output_dir} holds results of other settings ({', '.join(changed)}); choose another --output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(args, saved_path)


def apply_protocol(args: AttackArguments, task: str) -> AttackArguments:
    """``args`` with the settings of its ``--protocol``; a conflicting explicit setting is an error, not overridden."""
    import dataclasses

    from rift.evaluation.protocols import get_protocol

    protocol = get_protocol(args.protocol)
    flag = f"--protocol {protocol.name}"
    if "ascc" in args.attack:
        raise RiftError(f"{flag} is for the discrete attacks; ascc, the training adversary's measure, is not part of it")
    required = {"max_changed_share": protocol.max_changed_share, "max_substitutes": protocol.max_substitutes,
                "max_length": protocol.max_length_for(task)}
    defaults = {f.name: f.default for f in dataclasses.fields(AttackArguments)}
    for name, value in required.items():
        given = getattr(args, name)
        if given != defaults[name] and given != value:
            raise RiftError(f"{flag} sets --{name.replace('_', '-')} {value}; drop --{name.replace('_', '-')} {given}")
    if args.query_budget is not None:
        raise RiftError(f"{flag} sets its own query budget ({protocol.query_budget_per_word:g} per word); "
                        "drop --query-budget")
    if args.lm_constraint:
        raise RiftError(f"{flag} has no language-model constraint; drop --lm-constraint")
    if args.num_examples is not None and args.num_examples > protocol.max_examples:
        raise RiftError(f"{flag} attacks at most {protocol.max_examples} examples, got --num-examples {args.num_examples}")
    return dataclasses.replace(args, **required, num_examples=args.num_examples or protocol.max_examples)


def build_named_attack(name: str, model, tokenizer, source, args: AttackArguments):
    from rift.attacks.ascc import ASCCAttack
    from rift.attacks.constraints import PartOfSpeechMatch
    from rift.attacks.registry import build_attack
    from rift.evaluation.protocols import get_protocol

    if name == "ascc":
        return ASCCAttack(
            model, tokenizer, source, steps=args.ascc_steps, learning_rate=args.ascc_learning_rate,
            sparsity_weight=args.ascc_sparsity_weight, objective=args.ascc_objective,
            max_substitutes=args.max_substitutes or 8, batch_size=args.batch_size, max_length=args.max_length,
            seed=args.seed,
        )
    options = dict(max_changed_share=args.max_changed_share, query_budget=args.query_budget, seed=args.seed)
    if args.lm_constraint:
        from rift.attacks.lm import LMConstraint

        options["lm_constraint"] = LMConstraint()
    if name == "genetic":
        options.update(population=args.population, generations=args.generations)
    if args.protocol:
        protocol = get_protocol(args.protocol)
        # TextFooler keeps its part-of-speech check; the protocol's similarity check replaces TextFooler's own
        own = (PartOfSpeechMatch(),) if name == "textfooler" else ()
        options.update(constraints=own + protocol.constraints(), query_budget_per_word=protocol.query_budget_per_word)
    return build_attack(name, model, tokenizer, source, batch_size=args.batch_size, max_length=args.max_length, **options)


def attack_results(args: AttackArguments) -> dict:
    """Run every attack of ``args`` and return the content of results.json (on every process): what ``attack``
    and ``rift bench`` build on."""
    import torch

    from rift.accelerator import make_accelerator, pick_mixed_precision
    from rift.data import resolve_data_dir
    from rift.evaluation.protocols import get_protocol
    from rift.evaluation.robustness import run_attack, sample_indices
    from rift.evaluation.surface import mark_training_surface, training_adversary
    from rift.substitutions import build_substitution_source

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    accelerator = make_accelerator(mixed_precision=pick_mixed_precision(args.mixed_precision))
    log = (lambda message: print(message, file=sys.stderr)) if accelerator.is_main_process else (lambda message: None)
    task = args.load_task(log=log, scored_split=args.split)
    protocol = get_protocol(args.protocol) if args.protocol else None
    if protocol:
        args = apply_protocol(args, task.name)
    model, tokenizer = scored_classifier(args, task)
    model.to(accelerator.device).eval()
    source = build_substitution_source(args.synonyms, resolve_data_dir(args.data_dir),
                                       exclude_stopwords=args.exclude_stopwords, max_substitutes=args.max_substitutes)
    examples = task.splits[args.split]
    if not examples:
        raise RiftError(f"the {args.split} split of {task.name} is empty")
    # a protocol attacks only the texts it admits: the sample is drawn from those
    pool = [i for i, e in enumerate(examples) if protocol.eligible(e)] if protocol else range(len(examples))
    if not pool:
        raise RiftError(f"no example of the {args.split} split of {task.name} is long enough for --protocol {args.protocol}")
    picked = sample_indices(len(pool), args.num_examples, args.seed if args.sample_seed is None else args.sample_seed)
    indices = [pool[k] for k in picked]
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        check_attack_output(args, output_dir)
    accelerator.wait_for_everyone()

    results_path = output_dir / ATTACK_RESULTS_FILE
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.update(model=args.model, task=task.name, split=args.split, seed=args.seed, synonyms=args.synonyms,
                   mixed_precision=accelerator.mixed_precision,
                   protocol=protocol.settings(task.name) if protocol else None)
    results.setdefault("attacks", {})
    # which changes the model's own training adversary could have made (a model rift trained against one)
    adversary = training_adversary(args.model, tokenizer, args.data_dir)
    mark = None if adversary is None else lambda result: mark_training_surface(result, adversary, args.max_length)
    results["training_adversary"] = None if adversary is None else adversary.name
    for name in args.attack:
        attack = build_named_attack(name, model, tokenizer, source, args)
        with accelerator.autocast():
            summary = run_attack(attack, examples, indices, output_dir, accelerator, mark=mark)
        results["attacks"][name] = summary
        if accelerator.is_main_process:
            results_path.write_text(json.dumps(results, indent=2))
    model_dir = Path(args.model)
    if accelerator.is_main_process and (model_dir / CONFIG_FILE).is_file():
        # a checkpoint rift trained: its model card gets the results (results.json has them whatever happens)
        try:
            record_attacks(model_dir, {"task": task.name, "attacks": {n: results["attacks"][n] for n in args.attack}},
                           dataclasses.asdict(args))
        except OSError as error:
            log(f"the model card of {model_dir} was not updated ({error.strerror or error})")
    return results
