"""The ``rift`` command line: ``rift train``, ``rift eval``, ``rift attack``, ``rift bench``, ``rift report``."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

from rift import __version__
from rift.arguments import (
    AttackArguments,
    BenchArguments,
    EvalArguments,
    RecordArguments,
    ReportArguments,
    TrainingArguments,
)
from rift.config import add_dataclass_arguments, build_config
from rift.errors import RiftError


class _Parser(argparse.ArgumentParser):
    """Wrong flags give one line, not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _quiet_libraries() -> None:
    import transformers

    # the "newly initialized classifier" notice is expected when fine-tuning a bare encoder; rift shows its own
    # progress bars, not one per weight file
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def cmd_train(values: dict) -> int:
    from rift.objectives import PRESETS
    from rift.training.trainer import Trainer

    args = build_config(TrainingArguments, values, PRESETS)
    metrics = Trainer(args).train()
    summary = {k: metrics[k] for k in ("dev_accuracy", "test_accuracy", "train_seconds") if k in metrics}
    print(json.dumps(summary))
    print(f"model and metrics written to {args.output_dir}")
    return 0


def cmd_eval(values: dict) -> int:
    import torch

    from rift.evaluation.accuracy import accuracy
    from rift.models import check_label_names, load_classifier, load_tokenizer, resolve_model_path
    from rift.training.batching import encode_examples

    args = build_config(EvalArguments, values)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    task = args.load_task(log=lambda message: print(message, file=sys.stderr))
    model = load_classifier(args.model, trust_remote_code=args.trust_remote_code)
    if model.config.num_labels != task.num_labels:
        raise RiftError(f"model {args.model} predicts {model.config.num_labels} labels, task {task.name} has {task.num_labels}")
    check_label_names(model, args.model, task.label_names, args.allow_label_mismatch)
    tokenizer = load_tokenizer(args.model, args.trust_remote_code)
    items = encode_examples(tokenizer, task.splits[args.split], args.max_length)
    if not items:
        raise RiftError(f"the {args.split} split of {task.name} is empty")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    result = {
        "model": args.model, "task": task.name, "split": args.split, "num_examples": len(items),
        "accuracy": accuracy(model, items, pad, args.batch_size),
    }
    local = Path(resolve_model_path(args.model))
    output = Path(args.output) if args.output else (local if local.is_dir() else Path(".")) / f"eval_{task.name}_{args.split}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


ATTACK_NAMES = ("ascc", "pwws", "genetic", "textfooler")
# options that may change between an interrupted attack run and its continuation; num_examples too, since every
# record is keyed by its example's index and each summary covers exactly its own sample (rift bench runs genetic
# on fewer examples than the other attacks, into the same folder); output_dir, since a folder may be moved or copied
ATTACK_RESUMABLE_CHANGES = {"attack", "batch_size", "num_threads", "config", "num_examples", "output_dir"}


def _check_attack_output(args: AttackArguments, output_dir: Path) -> None:
    """Refuse to mix results of different settings in one folder; save the settings beside the results."""
    from rift.config import changed_options, save_config

    saved_path = output_dir / "attack_config.yaml"
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


def attack_model(args: AttackArguments) -> dict:
    """Run every attack of ``args`` and return the content of results.json (on every process): the building block of
    ``rift attack`` and ``rift bench``."""
    import torch

    from rift.accelerator import make_accelerator, pick_mixed_precision
    from rift.data import resolve_data_dir
    from rift.evaluation.protocols import get_protocol
    from rift.evaluation.robustness import run_attack, sample_indices
    from rift.evaluation.surface import mark_training_surface, training_adversary
    from rift.models import check_label_names, load_classifier, load_tokenizer
    from rift.substitutions import build_substitution_source

    unknown = [name for name in args.attack if name not in ATTACK_NAMES]
    if unknown or not args.attack:
        raise RiftError(f"unknown attack {', '.join(unknown) or '(none)'}; choose from {', '.join(ATTACK_NAMES)}")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    accelerator = make_accelerator(mixed_precision=pick_mixed_precision(args.mixed_precision))
    log = (lambda message: print(message, file=sys.stderr)) if accelerator.is_main_process else (lambda message: None)
    task = args.load_task(log=log)
    protocol = get_protocol(args.protocol) if args.protocol else None
    if protocol:
        args = apply_protocol(args, task.name)
    model = load_classifier(args.model, trust_remote_code=args.trust_remote_code)
    if model.config.num_labels != task.num_labels:
        raise RiftError(f"model {args.model} predicts {model.config.num_labels} labels, task {task.name} has {task.num_labels}")
    check_label_names(model, args.model, task.label_names, args.allow_label_mismatch)
    model.to(accelerator.device).eval()
    tokenizer = load_tokenizer(args.model, args.trust_remote_code)
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
        _check_attack_output(args, output_dir)
    accelerator.wait_for_everyone()

    results_path = output_dir / "results.json"
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
    return results


def cmd_attack(values: dict) -> int:
    from accelerate import PartialState

    args = build_config(AttackArguments, values)
    results = attack_model(args)
    if PartialState().is_main_process:
        print(format_table(results["attacks"]))
        print(f"results and every attacked example written to {args.output_dir}")
    return 0


def format_table(attacks: dict[str, dict]) -> str:
    """The terminal table of ``rift attack``: the discrete attacks first; ASCC, the training adversary's own
    measure, last and marked."""
    from rift.reporting.tables import discrete_first, format_interval

    columns = [("clean_accuracy", "clean acc", "{:.3f}"), ("robust_accuracy", "robust acc", "{:.3f}"),
               ("robust_accuracy_interval", "95% interval", "{:.3f}"),
               ("attack_success_rate", "success", "{:.3f}"), ("mean_perturbed_fraction", "perturbed", "{:.3f}"),
               ("mean_queries", "queries", "{:.1f}"), ("seconds_per_example", "s/example", "{:.3f}"),
               ("num_examples", "n", "{}")]
    widths = [16 if key.endswith("interval") else 12 for key, _, _ in columns]
    lines = [f"{'attack':<12}" + "".join(f"{title:>{w}}" for (_, title, _), w in zip(columns, widths))]
    for name in discrete_first(list(attacks)):
        summary = attacks[name]
        cells = ["-" if summary.get(key) is None else format_interval(summary[key], fmt) if key.endswith("interval")
                 else fmt.format(summary[key]) for key, _, fmt in columns]
        lines.append(f"{name + '*' if name == 'ascc' else name:<12}"
                     + "".join(f"{cell:>{w}}" for cell, w in zip(cells, widths)))
    if "ascc" in attacks:
        lines.append("* ascc is the training adversary's own measure (token-level, single-token substitutes only); "
                     "the discrete attacks are what users face")
    return "\n".join(lines)


def cmd_bench(values: dict) -> int:
    from rift.bench import run_bench
    from rift.objectives import PRESETS

    # --preset is rift train's, applied in every cell: here its name is only checked
    run_bench(build_config(BenchArguments, values, {name: {} for name in PRESETS}))
    return 0


def cmd_report(values: dict) -> int:
    from rift.reporting.report import write_report

    print(f"report written to {write_report(build_config(ReportArguments, values))}")
    return 0


def cmd_record(values: dict) -> int:
    from rift.bench import write_record

    args = build_config(RecordArguments, values)
    unfinished = write_record(Path(args.bench_dir), Path(args.destination))
    if unfinished:
        print(f"left out (training not finished): {', '.join(unfinished)}")
    print(f"record written to {args.destination}")
    return 0


COMMANDS = {
    "train": (TrainingArguments, cmd_train, "fine-tune an encoder (standard, adversarial or RIFT)"),
    "eval": (EvalArguments, cmd_eval, "clean accuracy of a classifier on a split"),
    "attack": (AttackArguments, cmd_attack, "attack a classifier (pwws, genetic, textfooler; ascc, the training adversary's measure) and measure its robustness"),
    "bench": (BenchArguments, cmd_bench, "train a grid of tasks x methods x seeds, attack every model, and tabulate "
                                         "the means and standard deviations over seeds (resumable)"),
    "report": (ReportArguments, cmd_report, "write one self-contained HTML report of a rift bench folder"),
    "record": (RecordArguments, cmd_record, "copy a rift bench folder without weights: the results, logs and "
                                            "adversarial examples, from which rift bench and rift report go on"),
}
# options that may also be given as positional arguments: rift report OUT, rift record OUT DEST
POSITIONAL = {"report": ["bench_dir"], "record": ["bench_dir", "destination"]}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rift",
        description="Robust Informative Fine-Tuning of pre-trained encoders, and robustness evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"rift {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (arguments, _handler, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_dataclass_arguments(sub, arguments)
        for positional in POSITIONAL.get(name, []):
            sub.add_argument(positional, nargs="?", default=argparse.SUPPRESS, metavar=positional.upper(),
                             help=f"same as --{positional.replace('_', '-')}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    namespace = vars(parser.parse_args(argv))
    command = namespace.pop("command", None)
    if command is None:
        parser.print_help()
        return 2
    try:
        _quiet_libraries()
        code = COMMANDS[command][1](namespace)
    except RiftError as error:
        print(f"rift: error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("rift: interrupted", file=sys.stderr)
        code = 130
    finally:
        distributed = _close_process_group()
    if distributed:
        # Under torchrun, objects that still hold gloo work (DDP's reducer among them) are destroyed during
        # interpreter finalization, where gloo's threads abort the process (SIGABRT, "terminate called without an
        # active exception") after the run has finished and saved everything. Skip finalization.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _close_process_group() -> bool:
    """Destroy the process group while the interpreter is fully alive; True when there was one."""
    distributed = sys.modules.get("torch.distributed")  # never imports torch for `rift --help`
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        return False
    gc.collect()  # free the wrapped models that reference the group before destroying it
    distributed.destroy_process_group()
    return True


if __name__ == "__main__":
    sys.exit(main())
