"""The ``rift`` command line: ``rift train``, ``rift eval``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rift import __version__
from rift.arguments import EvalArguments, TrainingArguments
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
    from rift.models import load_classifier, load_tokenizer, resolve_model_path
    from rift.training.batching import encode_examples

    args = build_config(EvalArguments, values)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    task = args.load_task(log=lambda message: print(message, file=sys.stderr))
    model = load_classifier(args.model, trust_remote_code=args.trust_remote_code)
    if model.config.num_labels != task.num_labels:
        raise RiftError(f"model {args.model} predicts {model.config.num_labels} labels, task {task.name} has {task.num_labels}")
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


COMMANDS = {
    "train": (TrainingArguments, cmd_train, "fine-tune an encoder (standard, adversarial or RIFT)"),
    "eval": (EvalArguments, cmd_eval, "clean accuracy of a classifier on a split"),
}


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
        return COMMANDS[command][1](namespace)
    except RiftError as error:
        print(f"rift: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rift: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
