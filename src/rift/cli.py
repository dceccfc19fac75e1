"""The ``rift`` command line: ``rift train``, ``rift eval``, ``rift attack``, ``rift bench``, ``rift report``."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import gc
import json
import os
import sys
from pathlib import Path

from rift import __version__
from rift.arguments import (
    AttackArguments,
    BenchArguments,
    CertifyArguments,
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


def cmd_train(args: TrainingArguments) -> int:
    from rift import api

    result = api.train(args)
    summary = {k: result.metrics[k] for k in ("dev_accuracy", "test_accuracy", "train_seconds") if k in result.metrics}
    print(json.dumps(summary))
    print(f"model and metrics written to {result.output_dir}")
    return 0


def cmd_eval(args: EvalArguments) -> int:
    from rift import api

    result = api.evaluate(args)
    print(json.dumps({k: v for k, v in dataclasses.asdict(result).items() if k != "output"}))
    print(f"written to {result.output}", file=sys.stderr)
    return 0


def cmd_attack(args: AttackArguments) -> int:
    from accelerate import PartialState

    from rift import api

    result = api.attack(args)
    if PartialState().is_main_process:
        print(format_table(result.results["attacks"], result.results.get("worst_case")))
        print(f"results and every attacked example written to {result.output_dir}")
    return 0


def cmd_certify(args: CertifyArguments) -> int:
    from rift import api

    results = api.certify(args)
    low, high = results["certified_accuracy_interval"]
    print(f"{results['smoothing']['kind']} on {results['num_examples']} examples: clean (vote) "
          f"{results['clean_accuracy']:.3f}, {results['abstained']} abstained; certified {results['certified_accuracy']:.3f} "
          f"[{low:.3f}, {high:.3f}] at confidence {1 - results['alpha']:.2f}")
    for radius, share in results.get("certified_accuracy_at_radius", {}).items():
        print(f"  certified against any {radius} changed words: {share:.3f}")
    print(f"results and every certificate written to {args.output_dir}")
    return 0


def format_table(attacks: dict[str, dict], worst: dict | None = None) -> str:
    """The terminal table of ``rift attack``: the worst case over the discrete attacks first (when there are
    several), then each discrete attack; ASCC, the training adversary's own measure, last and marked."""
    from rift.attacks.results import measures_training_adversary
    from rift.reporting.tables import discrete_first, format_interval

    columns = [("clean_accuracy", "clean acc", "{:.3f}"), ("robust_accuracy", "robust acc", "{:.3f}"),
               ("robust_accuracy_interval", "95% interval", "{:.3f}"),
               ("attack_success_rate", "success", "{:.3f}"), ("mean_perturbed_fraction", "perturbed", "{:.3f}"),
               ("mean_queries", "queries", "{:.1f}"), ("seconds_per_example", "s/example", "{:.3f}"),
               ("num_examples", "n", "{}")]
    widths = [16 if key.endswith("interval") else 12 for key, _, _ in columns]
    lines = [f"{'attack':<12}" + "".join(f"{title:>{w}}" for (_, title, _), w in zip(columns, widths))]
    rows = [("worst case", worst)] if worst else []
    for name, summary in rows + [(name, attacks[name]) for name in discrete_first(list(attacks))]:
        cells = ["-" if summary.get(key) is None else format_interval(summary[key], fmt) if key.endswith("interval")
                 else fmt.format(summary[key]) for key, _, fmt in columns]
        lines.append(f"{name + '*' if measures_training_adversary(name) else name:<12}"
                     + "".join(f"{cell:>{w}}" for cell, w in zip(cells, widths)))
    marked = [name for name in attacks if measures_training_adversary(name)]
    if marked:
        lines.append(f"* {', '.join(marked)}: the training adversary's own measure (in its embedding space); the "
                     "discrete attacks are what users face")
    return "\n".join(lines)


def cmd_bench(args: BenchArguments) -> int:
    from accelerate import PartialState

    from rift.bench import run_bench
    from rift.reporting.report import write_report

    run_bench(args)
    if PartialState().is_main_process:
        print(f"report written to {write_report(ReportArguments(bench_dir=args.output_dir, split=args.split))}")
    return 0


def cmd_report(args: ReportArguments) -> int:
    from rift.reporting.report import write_report

    print(f"report written to {write_report(args)}")
    return 0


def cmd_record(args: RecordArguments) -> int:
    from rift.bench import record

    unfinished = record(Path(args.bench_dir), Path(args.destination))
    if unfinished:
        print(f"left out (training not finished): {', '.join(unfinished)}")
    print(f"record written to {args.destination}")
    return 0


COMMANDS = {
    "train": (TrainingArguments, cmd_train, "fine-tune an encoder (standard, adversarial or RIFT)"),
    "eval": (EvalArguments, cmd_eval, "clean accuracy of a classifier on a split"),
    "certify": (CertifyArguments, cmd_certify, "certified accuracy of a classifier trained with a smoothing defence "
                                               "(safer, ranmask), beside its vote's clean accuracy"),
    "attack": (AttackArguments, cmd_attack, "attack a classifier (pwws, genetic, textfooler; ascc, the training adversary's measure) and measure its robustness"),
    "bench": (BenchArguments, cmd_bench, "train a grid of tasks x methods x seeds, attack every model, and tabulate "
                                         "the means and standard deviations over seeds (resumable)"),
    "report": (ReportArguments, cmd_report, "write one self-contained HTML report of a rift bench folder"),
    "record": (RecordArguments, cmd_record, "copy a rift bench folder without weights: the results, logs and "
                                            "adversarial examples, from which rift bench and rift report go on"),
}
# the system's refusals to write: the disk is full, over quota, read-only, or the folder is not the user's
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}
# options that may also be given as positional arguments: rift report OUT, rift record OUT DEST
POSITIONAL = {"report": ["bench_dir"], "record": ["bench_dir", "destination"]}


def command_presets(command: str) -> dict[str, dict] | None:
    from rift.presets import PRESETS

    if command == "train":
        return PRESETS
    # rift bench's --preset is rift train's, applied in every cell: here its name is only checked
    return {name: {} for name in PRESETS} if command == "bench" else None


def build_parser(components: bool = True) -> argparse.ArgumentParser:
    """The parser of every command; without ``components``, only the commands' own options (no component module,
    and so no torch, is imported)."""
    parser = _Parser(
        prog="rift",
        description="Robust Informative Fine-Tuning of pre-trained encoders, and robustness evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"rift {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (arguments, _handler, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_dataclass_arguments(sub, arguments, components)
        for positional in POSITIONAL.get(name, []):
            sub.add_argument(positional, nargs="?", default=argparse.SUPPRESS, metavar=positional.upper(),
                             help=f"same as --{positional.replace('_', '-')}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the commands' own options first: a command that gives no component's option (and asks for no help) is
    # parsed and checked before any component's module, and torch, is imported
    asks_help = "-h" in argv or "--help" in argv
    parser = build_parser(components=False)
    namespace, unparsed = (None, True) if asks_help else parser.parse_known_args(argv)
    if unparsed:
        namespace = build_parser().parse_args(argv)
    namespace = vars(namespace)
    command = namespace.pop("command", None)
    if command is None:
        parser.print_help()
        return 2
    try:
        # every option is checked before any heavy import or data loading
        args = build_config(COMMANDS[command][0], namespace, command_presets(command))
        _quiet_libraries()
        code = COMMANDS[command][1](args)
    except RiftError as error:
        print(f"rift: error: {error}", file=sys.stderr)
        code = 2
    except OSError as error:
        if error.errno not in WRITE_ERRORS:
            raise
        # every file is written whole or not at all (rift.files): what was finished before stays as it was
        where = f" ({error.filename})" if error.filename else ""
        print(f"rift: error: cannot write{where}: {error.strerror or error}; free the space or fix the permission, "
              "then run the same command again (rift train with --resume): it continues where it stopped", file=sys.stderr)
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
