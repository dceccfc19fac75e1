"""The census of what a new user may get wrong: every case states what it expects, runs as the user would (the CLI
in-process, or the Python API), and is classified by what actually happened.

Outcomes:
- ``clean error``: exit code 2 and one line, ``rift: error: ...``, that says what the case expects it to say;
- ``handled``: it ran and its result is right (the case's own check);
- ``wrong message``: one clean line, but not the one expected (a misleading message);
- ``refused``: a clean error where the case expects a run;
- ``silent wrong``: it ran (exit code 0) where it should have stopped, or its result is wrong;
- ``traceback``: an exception escaped, or more than one line of error;
- ``data lost``: a folder the case must leave alone (a finished run, a record) changed.

``tests/test_census.py`` runs it in CI and prints the table; the project's promise is 0 tracebacks, 0 silent wrong
results and 0 lost data, and every case as expected.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file

from rift.cli import main
from rift.errors import RiftError

OK = "ok"
ERROR_LINE = re.compile(r"^rift( [a-z]+)?: error: ")  # rift's own, or argparse's (rift train: error: ...)
NAMES = ("negative", "positive")


@dataclass
class Case:
    kind: str  # what could go wrong: one of KINDS
    name: str
    act: list[str] | Callable[[], object]  # rift's arguments, or a call of the Python API
    expect: str = OK  # OK, or what the one error line says
    check: Callable[[], bool] | None = None  # with OK: whether the result is right
    keep: tuple[Path, ...] = ()  # folders that must come out unchanged


KINDS = ("numbers", "paths", "data", "models", "meaning", "folders", "resume", "api", "disk")


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str = ""


@dataclass
class Setting:
    """The files the cases act on: a tiny trained model, data files, a finished run and a finished bench."""

    root: Path
    model: Path  # trained on NAMES
    bare: Path  # an encoder without a classification head
    run: Path  # a finished rift train run
    bench: Path  # a finished rift bench
    files: dict[str, Path] = field(default_factory=dict)

    def csv(self, name: str, rows: list[list[str]], header=("review", "sentiment")) -> Path:
        path = self.root / name
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def never(self) -> str:
        """A folder of its own for a case that must stop before it writes anything."""
        self.files[f"never-{len(self.files)}"] = path = self.root / "never" / str(len(self.files))
        return str(path)

    def data(self, test: Path | None = None, train: Path | None | bool = None, **overrides) -> list[str]:
        """The file task's options (train and test files, columns, label names); ``train=False`` leaves the training
        file out, as ``rift eval`` and ``rift attack`` of a test file need."""
        options = {"--task": "file", "--train-file": None if train is False else str(train or self.files["train"]),
                   "--test-file": str(test or self.files["test"]), "--text-column": "review",
                   "--label-column": "sentiment", "--label-names": ",".join(NAMES), "--max-length": "32"}
        options |= {f"--{k.replace('_', '-')}": v for k, v in overrides.items()}
        return [item for key, value in options.items() if value is not None for item in (key, value)]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_case(case: Case) -> Result:
    before = {folder: snapshot(folder) for folder in case.keep}
    stderr = io.StringIO()
    code, escaped = None, None
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            if isinstance(case.act, list):
                try:
                    code = main(case.act)
                except SystemExit as stopped:  # argparse's own checks (choices, types)
                    code = stopped.code
            else:
                try:
                    case.act()
                    code = 0
                except RiftError as error:
                    print(f"rift: error: {error}", file=stderr)
                    code = 2
    except Exception as error:  # noqa: BLE001 - what the census counts
        escaped = f"{type(error).__name__}: {error}"
    lost = [str(folder) for folder in case.keep if snapshot(folder) != before[folder]]
    if lost:
        return Result(case, "data lost", ", ".join(lost))
    errors = [line for line in stderr.getvalue().splitlines() if line.strip()]
    said = [line for line in errors if ERROR_LINE.match(line)]
    if escaped or any("Traceback" in line for line in errors) or code not in (0, 2):
        return Result(case, "traceback", escaped or f"exit code {code}: {errors[-3:]}")
    if code == 2:
        if len(said) != 1:
            return Result(case, "traceback", f"{len(said)} error lines: {errors[-3:]}")
        if case.expect == OK:
            return Result(case, "refused", said[0])
        return Result(case, "clean error" if case.expect in said[0] else "wrong message", said[0])
    if case.expect != OK:
        return Result(case, "silent wrong", f"exit code 0; expected: {case.expect}")
    try:
        right = case.check is None or case.check()
    except Exception as error:  # noqa: BLE001
        return Result(case, "silent wrong", f"its check failed: {type(error).__name__}: {error}")
    return Result(case, "handled" if right else "silent wrong", "" if right else "the result is wrong")


def expected(result: Result) -> bool:
    return result.outcome == ("handled" if result.case.expect == OK else "clean error")


def table(results: list[Result]) -> str:
    outcomes = ("clean error", "handled", "wrong message", "refused", "silent wrong", "traceback", "data lost")
    lines = ["| kind | cases | " + " | ".join(outcomes) + " |", "|---|---|" + "---|" * len(outcomes)]
    for kind in KINDS + ("all",):
        chosen = [r for r in results if kind in ("all", r.case.kind)]
        lines.append(f"| {kind} | {len(chosen)} | " + " | ".join(str(sum(r.outcome == o for r in chosen))
                                                                   for o in outcomes) + " |")
    lines += [f"- {r.case.kind} / {r.case.name}: {r.outcome} ({r.detail})" for r in results if not expected(r)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- the cases
def number_cases(s: Setting) -> list[Case]:
    """Every numeric option at values outside its range, or not a number of its kind: one line naming it."""
    train = ["train", "--model", str(s.model), *s.data(), "--output-dir", s.never()]
    attack = ["attack", "--model", str(s.model), *s.data(train=False), "--output-dir", s.never()]
    bench = ["bench", "--output-dir", s.never()]
    evaluate = ["eval", "--model", str(s.model), *s.data(train=False), "--output", s.never()]
    bad = {
        (*train,): {
            "--batch-size": ["0", "-4", "two"], "--learning-rate": ["-1e-4", "0", "nan", "inf"],
            "--epochs": ["0", "1.5", "-1"], "--seed": ["-1", str(2**32), "x"],
            "--warmup-ratio": ["1.5", "-0.1", "nan"], "--max-length": ["0", "-5"], "--eval-steps": ["-1"],
            "--save-steps": ["-1"], "--logging-steps": ["-1"], "--gradient-accumulation-steps": ["0"],
            "--weight-decay": ["-1", "nan"], "--max-grad-norm": ["nan"], "--num-threads": ["-2"],
            "--max-train-examples": ["0", "-1"], "--min-train-words": ["-1"], "--eval-batch-size": ["0"],
            "--retention-examples": ["-1"],
        },
        (*train[:-2], "--method", "rift", "--output-dir", s.never()): {
            "--alpha": ["-1", "nan"], "--beta": ["-1", "inf"], "--tau": ["0", "-0.1"], "--ascc-steps": ["0"],
            "--adversarial-weight": ["-1"],
        },
        (*train[:-2], "--method", "pgd", "--output-dir", s.never()): {
            "--adv-steps": ["0"], "--adv-step-size": ["-0.1", "nan"],
        },
        (*attack,): {
            "--num-examples": ["0", "-3"], "--batch-size": ["0"], "--max-changed-share": ["1.2", "0", "nan"],
            "--query-budget": ["0", "-1"], "--sample-seed": ["-1"], "--max-substitutes": ["0"],
        },
        (*attack[:-2], "--attack", "genetic", "--output-dir", s.never()): {
            "--population": ["1", "0"], "--generations": ["-1"],
        },
        (*bench,): {
            "--seeds": ["0,-2", "a"], "--num-examples": ["-1"], "--genetic-num-examples": ["0"],
            "--attack-seed": ["-1"], "--epochs": ["0"],
        },
        (*evaluate,): {"--batch-size": ["0", "-1"]},
        ("certify", "--model", str(s.model), *s.data(train=False), "--smoothing", "ranmask", "--output-dir",
         s.never()): {
            "--alpha": ["0", "0.7", "nan"], "--selection-samples": ["0"], "--certify-samples": ["0", "-5"],
            "--num-examples": ["0"],
        },
    }
    cases = []
    for command, options in bad.items():
        for option, values in options.items():
            for value in values:
                argv = [*command[:-1], s.never(), f"{option}={value}"]  # a folder of its own, in case it runs
                cases.append(Case("numbers", f"{command[0]} {option} {value}", argv, option, keep=(s.run,)))
    return cases


def path_cases(s: Setting) -> list[Case]:
    a_file = s.root / "a-file"
    a_file.write_text("not a folder")
    train = ["train", "--model", str(s.model), *s.data()]
    return [
        Case("paths", "output folder is a file", [*train, "--output-dir", str(a_file)], "exists and is not a folder"),
        Case("paths", "output folder under a file", [*train, "--output-dir", str(a_file / "run")],
             "a-file is a file, so the path cannot be created"),
        Case("paths", "empty output folder", [*train, "--output-dir", ""], "--output-dir: the path is empty"),
        Case("paths", "output folder holds a finished run", [*train, "--output-dir", str(s.run)],
             "already holds a rift run; pass --resume", keep=(s.run,)),
        Case("paths", "a model path that does not exist", ["train", "--model", str(s.root / "no-model"), *s.data(),
                                                           "--output-dir", s.never()], "no-model"),
        Case("paths", "a config file that does not exist", [*train, "--config", str(s.root / "none.yaml"),
                                                            "--output-dir", s.never()], "none.yaml"),
        Case("paths", "a training file that does not exist",
             ["train", "--model", str(s.model), *s.data(train=s.root / "none.csv"), "--output-dir",
              s.never()], "none.csv"),
        Case("paths", "a training file that is a folder",
             ["train", "--model", str(s.model), *s.data(train=s.root), "--output-dir", s.never()],
             str(s.root)),
        Case("paths", "eval output is a folder", ["eval", "--model", str(s.model), *s.data(), "--output",
                                                  str(s.root)], "is a folder, not a file"),
        Case("paths", "report of a folder that is no bench", ["report", str(s.run)], "holds no results.json"),
        Case("paths", "report of a file", ["report", str(a_file)], "is not a folder"),
        Case("paths", "record of a folder that is no bench", ["record", str(s.run), str(s.root / "rec")],
             "is not a rift bench folder"),
        Case("paths", "record into the bench itself", ["record", str(s.bench), str(s.bench)],
             "another folder than the bench itself", keep=(s.bench,)),
        Case("paths", "a data folder that does not exist",
             ["train", "--task", "sst2", "--data-dir", str(s.root / "no-data"), "--model", str(s.model),
              "--output-dir", s.never()], "no-data"),
        Case("paths", "eval without --output writes beside the model folder, not in it",
             ["eval", "--model", str(s.run), *s.data(train=False)], OK,
             lambda: json.loads((s.root / "run.eval-file-test.json").read_text())["num_examples"] == 24,
             keep=(s.run,)),
        Case("paths", "attack output under a file", ["attack", "--model", str(s.model), *s.data(), "--output-dir",
                                                     str(a_file / "o")], "a-file is a file"),
    ]


def data_cases(s: Setting) -> list[Case]:
    good = [["a good film", "positive"], ["a bad film", "negative"]] * 4

    def evaluating(name: str, path: Path, expect: str, check=None, **overrides) -> Case:
        output = s.root / f"eval-{len(s.files)}.json"
        s.files[f"eval-{name}"] = output
        return Case("data", name, ["eval", "--model", str(s.model), *s.data(test=path, train=False, **overrides), "--output",
                                   str(output)], expect, check)

    def raw(name: str, text: str) -> Path:
        path = s.root / name
        path.write_text(text, encoding="utf-8")
        return path

    numeric = s.csv("numeric.csv", [["a good film", "1"], ["a bad film", "0"]] * 4)
    cases = [
        evaluating("label -1", s.csv("minus.csv", [*good, ["odd", "-1"]]), "-1"),
        evaluating("labels 1.0 and 0.0", s.csv("floats.csv", [["a good film", "1.0"], ["a bad film", "0.0"]]),
                   "is a number but not a class id", label_names=None),
        evaluating("label 00 beside 0", s.csv("padded.csv", [["a good film", "1"], ["a bad film", "00"]]), "00",
                   label_names=None),
        evaluating("a label outside the names", s.csv("other.csv", [*good, ["meh", "neutral"]]), "neutral"),
        evaluating("an empty text", s.csv("empty-text.csv", [*good, ["", "positive"]]), "empty"),
        evaluating("a missing text column", s.csv("no-text.csv", good, header=("body", "sentiment")), "review"),
        evaluating("a missing label column", s.csv("no-label.csv", good, header=("review", "stars")), "sentiment"),
        evaluating("a duplicated column name", s.csv("dup.csv", [[t, l, l] for t, l in good],
                                                     header=("review", "sentiment", "sentiment")), "sentiment"),
        evaluating("an empty file", raw("empty.csv", ""), "empty.csv"),
        evaluating("a header without rows", raw("header.csv", "review,sentiment\n"), "header.csv"),
        evaluating("bytes that are not UTF-8", s.root / "latin.csv", "latin.csv"),
        evaluating("a text-pair column that is missing", s.csv("pairs.csv", good), "hypothesis",
                   text_pair_column="hypothesis"),
        evaluating("numeric labels without names, for a model with names", numeric,
                   "was trained with labels negative,positive (in id order) but the task has 0,1", label_names=None),
        evaluating("numeric labels as ids of the names given", numeric, OK,
                   lambda: json.loads(s.files["eval-numeric labels as ids of the names given"].read_text())[
                       "num_examples"] == 8),
        evaluating("a stray quote that swallows rows", raw("quote.csv", 'review,sentiment\n"a good film,positive\n'
                                                        + "a bad film,negative\n" * 3), "quote.csv"),
        evaluating("the label names in another order", s.csv("order.csv", good), "was trained with labels "
                   "negative,positive (in id order) but the task has positive,negative", label_names="positive,negative"),
        evaluating("duplicate label names", s.csv("dupnames.csv", good), "distinct", label_names="neg,neg"),
    ]
    (s.root / "latin.csv").write_bytes("review,sentiment\ncaf\xe9 film,positive\n".encode("latin-1"))
    return cases


def model_cases(s: Setting) -> list[Case]:
    def broken(name: str, damage: Callable[[Path], None]) -> Path:
        folder = Path(shutil.copytree(s.model, s.root / "models" / name))
        damage(folder)
        return folder

    def drop(*names):
        return lambda folder: [(folder / n).unlink() for n in names]

    def write(name, data):
        return lambda folder: (folder / name).write_bytes(data)

    def pickled(folder: Path) -> None:
        import torch
        from safetensors.torch import load_file
        torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()

    def three_labels(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config |= {"id2label": {"0": "a", "1": "b", "2": "c"}, "label2id": {"a": 0, "b": 1, "c": 2}}
        (folder / "config.json").write_text(json.dumps(config))

    damaged = {
        "no config.json": (drop("config.json"), "no config.json"),
        "config.json that is not JSON": (write("config.json", b"{not json"), "cannot load model from folder"),
        "no weights": (drop("model.safetensors"), "no"),
        "empty weights": (write("model.safetensors", b""), "cannot load model from folder"),
        "truncated weights": (lambda f: (f / "model.safetensors").write_bytes(
            (f / "model.safetensors").read_bytes()[:1000]), "cannot load model from folder"),
        "pickle weights only": (pickled, "rift loads safetensors only"),
        "a head of another size than config.json": (three_labels, "cannot load model from folder"),
        "no tokenizer": (drop("tokenizer.json", "tokenizer_config.json"), "tokenizer"),
    }
    cases = []
    for name, (damage, message) in damaged.items():
        folder = broken(name.replace(" ", "-").replace(".", ""), damage)
        for command in ("eval", "attack"):
            out = ["--output", s.never()] if command == "eval" else [
                "--output-dir", s.never()]
            cases.append(Case("models", f"{command}: {name}", [command, "--model", str(folder), *s.data(), *out],
                              message))
    untrained = s.root / "eval-untrained.json"
    cases += [
        Case("models", "eval of an encoder without a trained head",
             ["eval", "--model", str(s.bare), *s.data(), "--output", s.never()], "head"),
        Case("models", "attack of an encoder without a trained head",
             ["attack", "--model", str(s.bare), *s.data(), "--output-dir", s.never()], "head"),
        Case("models", "eval of an untrained head when asked for",
             ["eval", "--model", str(s.bare), *s.data(), "--allow-untrained-head", "--output", str(untrained)], OK,
             lambda: bool(json.loads(untrained.read_text()).get("untrained_head"))),
        Case("models", "train from a model with a head of another size",
             ["train", "--model", str(broken("three", three_labels)), *s.data(), "--output-dir",
              s.never()], "has a classification head with 3 labels, the task has 2"),
    ]
    return cases


def meaning_cases(s: Setting) -> list[Case]:
    empty = s.root / "no-synonyms"  # a data folder whose synonym table is empty
    (empty / "synonyms").mkdir(parents=True)
    (empty / "synonyms" / "counterfitted_neighbors.json").write_text("{}")
    (empty / "stopwords").mkdir()
    (empty / "stopwords" / "english.txt").write_text("the\n")
    other_names = s.root / "eval-other-names.json"
    short_names = s.csv("short-names.csv", [["a good film", "pos"], ["a bad film", "neg"]] * 12)
    return [
        Case("meaning", "duplicate seeds", ["bench", "--seeds", "0,1,0", "--output-dir", s.never()],
             "--seeds: 0 given more than once"),
        Case("meaning", "duplicate methods", ["bench", "--methods", "standard,rift,standard", "--output-dir",
                                              s.never()], "--methods: standard given more than once"),
        Case("meaning", "duplicate tasks", ["bench", "--task", "sst2,sst2", "--output-dir", s.never()],
             "--task: sst2 given more than once"),
        Case("meaning", "certify a model trained for no smoothing, without naming one",
             ["certify", "--model", str(s.model), *s.data(train=False), "--output-dir", s.never()],
             "records no smoothing"),
        Case("meaning", "certify a model as a smoothing that is no defence",
             ["certify", "--model", str(s.model), *s.data(train=False), "--smoothing", "dne", "--output-dir",
              s.never()], "--smoothing"),
        Case("meaning", "a smoothing defence twice in a bench",
             ["bench", "--methods", "ranmask,ranmask", "--output-dir", s.never()], "ranmask given more than once"),
        Case("meaning", "duplicate attacks", ["attack", "--model", str(s.model), *s.data(), "--attacks", "pwws,pwws",
                                              "--output-dir", s.never()], "pwws"),
        Case("meaning", "a synonym table without any substitute",
             ["attack", "--model", str(s.model), *s.data(train=False), "--data-dir", str(empty), "--output-dir",
              s.never()], "substitute"),
        Case("meaning", "label names that differ from the model's",
             ["eval", "--model", str(s.model), *s.data(test=short_names, train=False, label_names="neg,pos"),
              "--output", str(other_names)], "was trained with labels negative,positive"),
        Case("meaning", "label names that differ, when allowed",
             ["eval", "--model", str(s.model), *s.data(test=short_names, train=False, label_names="neg,pos"),
              "--allow-label-mismatch", "--output", str(other_names)], OK,
             lambda: json.loads(other_names.read_text())["num_examples"] == 24),
        Case("meaning", "an option the method does not read",
             ["train", "--model", str(s.model), *s.data(), "--alpha", "0.3", "--output-dir", s.never()],
             "--alpha is not read by --method standard"),
        Case("meaning", "an option the adversary does not read",
             ["train", "--model", str(s.model), *s.data(), "--method", "ascc", "--adversary", "random",
              "--ascc-steps", "3", "--output-dir", s.never()], "--ascc-steps is not read"),
        Case("meaning", "an attack option of another attack",
             ["attack", "--model", str(s.model), *s.data(), "--attack", "pwws", "--population", "8",
              "--output-dir", s.never()], "--population is not read by --attack pwws"),
        Case("meaning", "a task's own files beside a named task",
             ["train", "--model", str(s.model), "--task", "sst2", "--test-file", str(s.files["test"]),
              "--output-dir", s.never()], "--test-file is not read by --task sst2"),
        *[Case("meaning", f"the attack list spelled {flag}",
               ["attack", "--model", str(s.model), *s.data(train=False), flag, "pwws", "--num-examples", "4",
                "--output-dir", str(s.root / f"spelled{flag}")], OK,
               lambda flag=flag: list(json.loads((s.root / f"spelled{flag}" / "results.json").read_text())[
                   "attacks"]) == ["pwws"]) for flag in ("--attack", "--attacks")],
        Case("meaning", "an unknown method", ["train", "--model", str(s.model), *s.data(), "--method", "robust",
                                              "--output-dir", s.never()], "--method"),
        Case("meaning", "an unknown attack", ["attack", "--model", str(s.model), *s.data(), "--attacks", "fgsm",
                                              "--output-dir", s.never()], "'fgsm' is not one of"),
        Case("meaning", "an unknown adversary in a bench arm", ["bench", "--methods", "rift+nope", "--output-dir",
                                                                s.never()], "unknown adversary 'nope'"),
        Case("meaning", "an unknown protocol", ["attack", "--model", str(s.model), *s.data(), "--protocol", "x",
                                                "--output-dir", s.never()], "--protocol"),
        Case("meaning", "a fractional number of epochs in a config",
             ["train", "--model", str(s.model), *s.data(), "--config", str(s.files["fractional"]), "--output-dir",
              s.never()], "epochs: cannot use 1.5 (expected a whole number)"),
        Case("meaning", "a config that is not a mapping",
             ["train", "--config", str(s.files["list"]), "--output-dir", s.never()],
             "expected a mapping of option names to values"),
        Case("meaning", "a config with an unknown option",
             ["train", "--model", str(s.model), *s.data(), "--config", str(s.files["unknown"]), "--output-dir",
              s.never()], "lerning_rate"),
        Case("meaning", "a class-balanced batch smaller than the classes",
             ["train", "--model", str(s.model), *s.data(), "--method", "rift", "--batch-size", "1", "--output-dir",
              s.never()], "--batch-size must be at least 2"),
    ]


def folder_cases(s: Setting) -> list[Case]:
    from rift.evaluation.records import CELLS_DIR

    other = Path(shutil.copytree(s.bench, s.root / "other-bench"))
    [cell] = [p for p in (other / CELLS_DIR).iterdir() if p.is_dir()]
    metrics = json.loads((cell / "metrics.json").read_text())
    (cell / "metrics.json").write_text(json.dumps(metrics | {"test_accuracy": 0.123}))
    record = s.root / "record"
    damaged_bench = Path(shutil.copytree(s.bench, s.root / "damaged-bench"))
    [damaged_cell] = [p for p in (damaged_bench / CELLS_DIR).iterdir() if p.is_dir()]
    (damaged_cell / "metrics.json").write_text("{cut sh")
    bench_command = json.loads((s.bench / "results.json").read_text())["settings"]
    attack_dir = s.root / "attacked"
    attack = ["attack", "--model", str(s.model), *s.data(), "--num-examples", "4", "--output-dir", str(attack_dir)]
    other_model = Path(shutil.copytree(s.model, s.root / "other-model"))  # the same model, its weights changed
    weights = load_file(other_model / "model.safetensors")
    save_file({name: tensor * 1.01 for name, tensor in weights.items()}, other_model / "model.safetensors",
              metadata={"format": "pt"})
    edited = s.root / "edited.csv"
    shutil.copy(s.files["test"], edited)
    edited_dir = s.root / "attacked-edited"
    edited_attack = ["attack", "--model", str(s.model), *s.data(test=edited), "--num-examples", "4",
                     "--output-dir", str(edited_dir)]
    return [
        Case("folders", "record a bench", ["record", str(s.bench), str(record)], OK,
             lambda: (record / CELLS_DIR).is_dir() and (record / "results.json").is_file(), keep=(s.bench,)),
        Case("folders", "record the same bench again", ["record", str(s.bench), str(record)], OK,
             lambda: (record / "results.json").is_file(), keep=(s.bench,)),
        Case("folders", "record another run over a recorded cell", ["record", str(other), str(record)],
             "holds another run", keep=(record, other)),
        Case("folders", "bench over a cell whose metrics are damaged",
             ["bench", "--output-dir", str(damaged_bench), "--task", "file", "--model", str(s.bare),
              "--train-config", str(s.files["train-config"]), "--methods", "standard", "--seeds", "0",
              "--attacks", "pwws", "--num-examples", str(bench_command["num_examples"]), "--epochs", "1",
              "--max-length", "32", "--num-threads", "1"], "metrics.json", keep=(damaged_bench,)),
        Case("folders", "attack", attack, OK, lambda: (attack_dir / "results.json").is_file()),
        Case("folders", "the same attack again", attack, OK, lambda: (attack_dir / "results.json").is_file()),
        Case("folders", "the attack folder with another model",
             ["attack", "--model", str(other_model), *s.data(), "--num-examples", "4", "--output-dir", str(attack_dir)],
             "holds results of other settings (model)", keep=(attack_dir,)),
        # s.run is a copy of s.model: the same weights at another path (a record continued elsewhere) go on
        Case("folders", "the attack folder with the same model at another path",
             ["attack", "--model", str(s.run), *s.data(), "--num-examples", "4", "--output-dir", str(attack_dir)],
             OK, lambda: (attack_dir / "results.json").is_file()),
        Case("folders", "an attack", edited_attack, OK, lambda: (edited_dir / "results.json").is_file()),
        Case("folders", "the attack again after its data file changed",
             lambda: (edited.write_text(edited.read_text().replace("good", "fine")), _cli(edited_attack))[1],
             "changed", keep=(edited_dir,)),
        Case("folders", "the attack after its data changed, allowed",
             [*edited_attack, "--allow-changed-data"], OK,
             lambda: "changed_data" in json.loads((edited_dir / "rift_inputs.json").read_text())),
    ]


def resume_cases(s: Setting) -> list[Case]:
    def interrupted(name: str, damage: Callable[[Path], None] | None) -> Path:
        folder = Path(shutil.copytree(s.files["interrupted"], s.root / "resumes" / name))
        [checkpoint] = (folder / "resume").glob("checkpoint-*")
        if damage:
            damage(checkpoint)
        return folder

    def command(folder: Path, *extra: str) -> list[str]:
        return ["train", "--model", str(s.bare), *s.data(), "--epochs", "2", "--save-steps", "1", "--logging-steps",
                "1", "--retention-examples", "0", "--resume", *extra, "--output-dir", str(folder)]

    cases = []
    for piece in ("rng_state.pth", "optimizer.pt", "scheduler.pt", "model.safetensors", "rift_run_state.json"):
        folder = interrupted(f"missing-{piece}", lambda c, p=piece: (c / p).unlink())
        cases.append(Case("resume", f"a missing {piece}", command(folder), piece))
        folder = interrupted(f"damaged-{piece}", lambda c, p=piece: (c / p).write_bytes(b"\x00garbage"))
        cases.append(Case("resume", f"a damaged {piece}", command(folder), piece))
    whole = interrupted("whole", None)
    changed = interrupted("changed", None)
    cases += [
        Case("resume", "resume with other options", command(changed, "--learning-rate", "0.5"),
             "options differ from the interrupted run"),
        Case("resume", "resume an interrupted run", command(whole), OK,
             lambda: json.loads((whole / "metrics.json").read_text())["steps"] > 0),
        Case("resume", "resume a finished run", command(whole), OK, lambda: (whole / "metrics.json").is_file(),
             keep=(whole,)),
    ]
    return cases


def api_cases(s: Setting) -> list[Case]:
    import rift

    def trainer(**kwargs):
        return lambda: rift.RobustTrainer(**kwargs)

    return [
        Case("api", "load_task with a number for a file", lambda: rift.load_task("file", train_file=123),
             "cannot use 123 (expected a string"),
        Case("api", "load_task of an unknown task", lambda: rift.load_task("sst3"), "sst3"),
        Case("api", "RobustTrainer with a string for its options",
             lambda: rift.RobustTrainer(model=rift.load_classifier(str(s.model)), robust_options="discrete"),
             "robust_options"),
        Case("api", "RobustTrainer without a model", trainer(model=None), "model"),
        Case("api", "load_classifier with a string of label names",
             lambda: rift.load_classifier(str(s.model), label_names="neg,pos"), "label_names"),
        Case("api", "TrainingArguments with a batch size of 0",
             lambda: rift.TrainingArguments.build(batch_size=0), "--batch-size must be >= 1, got 0"),
        Case("api", "TrainingArguments with an unknown option", lambda: rift.TrainingArguments.build(lerning_rate=1),
             "lerning_rate"),
    ]


def disk_cases(s: Setting) -> list[Case]:
    def full(argv: list[str]) -> Callable[[], object]:
        def act():
            real = os.fsync

            def no_space(descriptor):
                raise OSError(errno.ENOSPC, "No space left on device")
            os.fsync = no_space
            try:
                return _cli(argv)
            finally:
                os.fsync = real
        return act

    return [
        Case("disk", "a full disk while training",
             full(["train", "--model", str(s.bare), *s.data(), "--epochs", "1", "--output-dir", str(s.root / "full")]),
             "No space left on device"),
        Case("disk", "a full disk while attacking",
             full(["attack", "--model", str(s.model), *s.data(), "--num-examples", "4", "--output-dir",
                   str(s.root / "full-attack")]), "No space left on device"),
        Case("disk", "a full disk while recording", full(["record", str(s.bench), str(s.root / "full-record")]),
             "No space left on device", keep=(s.bench,)),
    ]


def _cli(argv: list[str]) -> None:
    """``rift ARGV`` inside an API case: its one error line comes back as a ``RiftError``."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(argv)
    if code:
        said = [line for line in stderr.getvalue().splitlines() if ERROR_LINE.match(line)]
        raise RiftError(ERROR_LINE.sub("", said[-1]) if said else f"exit code {code}")


def all_cases(s: Setting) -> list[Case]:
    s.files["fractional"] = s.root / "fractional.yaml"
    s.files["fractional"].write_text(yaml.safe_dump({"epochs": 1.5}))
    s.files["list"] = s.root / "list.yaml"
    s.files["list"].write_text("- epochs\n- 3\n")
    s.files["unknown"] = s.root / "unknown.yaml"
    s.files["unknown"].write_text(yaml.safe_dump({"lerning_rate": 0.1}))
    return [*number_cases(s), *path_cases(s), *data_cases(s), *model_cases(s), *meaning_cases(s), *folder_cases(s),
            *resume_cases(s), *api_cases(s), *disk_cases(s)]

