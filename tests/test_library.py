"""rift as a library: the public API, the drop-in transformers.Trainer, model cards, and no import cycles."""

from __future__ import annotations

import ast
import dataclasses
import csv
import importlib.util
import inspect
import json
import pydoc
import sys
from pathlib import Path

import pytest
from conftest import sentiment_examples

import rift
from rift.errors import RiftError

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC.parent


def package_imports() -> dict[str, set[str]]:
    """Every rift module -> the rift modules it imports anywhere (functions and TYPE_CHECKING blocks included)."""
    modules = {}
    for path in (SRC / "rift").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rift"):
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_the_package_has_no_import_cycle_and_nothing_imports_the_cli():
    graph = package_imports()
    assert not [name for name, found in graph.items() if "rift.cli" in found]
    # rift/__init__ imports its exports lazily, by name: it is not an edge
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dependency in sorted(graph[name]):
            if state.get(dependency) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dependency):] + [dependency]))
            if dependency not in state:
                visit(dependency, path + [dependency])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert len(graph) > 40  # the walk saw the package


def test_help_shows_the_api_and_every_export_resolves():
    text = pydoc.render_doc(rift, renderer=pydoc.plaintext)
    for name in ("train", "attack", "evaluate", "RobustTrainer", "build_attack", "build_adversary", "load_classifier"):
        assert name in text
    for name in rift.__all__:
        assert getattr(rift, name) is not None
    with pytest.raises(AttributeError):
        rift.no_such_thing  # noqa: B018


def test_pyproject_lists_every_package_the_code_imports():
    import importlib.metadata
    import re
    import tomllib

    declared = {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
                for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    imported = set()
    for path in (SRC / "rift").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
    third_party = sorted(imported - set(sys.stdlib_module_names) - {"rift", "__future__"})
    distributions = importlib.metadata.packages_distributions()
    missing = [(name, distributions.get(name)) for name in third_party
               if not {d.lower().replace("_", "-") for d in distributions.get(name, [])} & declared]
    assert len(third_party) >= 10 and missing == []


def test_names_kept_beside_the_options_agree_with_the_registries():
    from rift import arguments
    from rift.config import choices_of
    from rift.presets import PRESETS
    from rift.registry import load, names

    # every registered component declares the name it is registered under, and the flags offer exactly those
    for kind in ("objective", "adversary", "attack"):
        assert names(kind) and all(load(kind, name).name == name for name in names(kind))
    fields = {f.name: f for f in dataclasses.fields(arguments.TrainingArguments)}
    assert choices_of(fields["method"].metadata) == names("objective")
    assert choices_of(fields["adversary"].metadata) == names("adversary")
    attack_field = next(f for f in dataclasses.fields(arguments.AttackArguments) if f.name == "attack")
    assert choices_of(attack_field.metadata) == names("attack")
    assert arguments.PRESET_NAMES == tuple(PRESETS)
    from rift.evaluation.protocols import PROTOCOLS

    assert arguments.PROTOCOL_NAMES == tuple(PROTOCOLS)
    # the API's defaults are the command line's
    defaults = inspect.signature(rift.build_attack).parameters
    assert defaults["max_length"].default == rift.AttackArguments.max_length == 128
    assert defaults["batch_size"].default == rift.AttackArguments.batch_size


def test_checking_options_imports_no_model_code():
    """Bad values of a command's own options are refused before any heavy import: the options, their checks and the
    presets need no torch (the chosen components, which declare their own options, are imported after)."""
    code = ("import sys; import rift.arguments, rift.config, rift.presets; from rift.errors import RiftError\n"
            "try: rift.arguments.TrainingArguments.build(method='rift', batch_size=0, output_dir='unused')\n"
            "except RiftError as error: assert 'batch-size' in str(error), error\n"
            "from rift.cli import main\n"
            "assert main(['train', '--method', 'rift', '--batch-size', '0', '--output-dir', 'unused']) == 2\n"
            "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; print(heavy); sys.exit(len(heavy))")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_api_options_are_checked_like_flags(tmp_path):
    for options, message in ((dict(batch_size="16"), "--batch-size: cannot use '16'"),
                             (dict(epochs=1.5), "--epochs: cannot use 1.5 (expected a whole number)"),
                             (dict(learning_rate=0.0), "--learning-rate must be > 0"),
                             (dict(method="nope"), "--method: 'nope' is not one of"),
                             (dict(colour="red"), "unknown option(s) colour")):
        with pytest.raises(RiftError, match=message.replace("(", r"\(").replace(")", r"\)")):
            rift.train(output_dir=str(tmp_path / "out"), **options)
    assert not (tmp_path / "out").exists()


def test_api_calls_with_wrong_types_are_one_line_errors(tiny_model_dir):
    with pytest.raises(RiftError, match=r"^--train-file: cannot use 123 \(expected a string, got 123\)$"):
        rift.load_task("file", train_file=123)
    with pytest.raises(RiftError, match="^label_names: expected a list of names, one per class, got 'neg,pos'$"):
        rift.load_classifier(tiny_model_dir, label_names="neg,pos")
    tokenizer = rift.load_tokenizer(tiny_model_dir)
    with pytest.raises(RiftError, match="^RobustTrainer needs model, a sequence classifier"):
        rift.RobustTrainer(model=None, processing_class=tokenizer)
    with pytest.raises(RiftError, match="^robust_options: expected a dict of rift train options"):
        rift.RobustTrainer(model=rift.load_classifier(tiny_model_dir, ["a", "b"]), processing_class=tokenizer,
                           robust_options="discrete")


def write_rows(path: Path, examples) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label"])
        writer.writerows((e.text, e.label) for e in examples)
    return path


def test_train_attack_and_model_card_through_the_api(tmp_path, tiny_model_dir):
    from huggingface_hub import ModelCard

    files = dict(train_file=str(write_rows(tmp_path / "train.csv", sentiment_examples(64, 0))),
                 dev_file=str(write_rows(tmp_path / "dev.csv", sentiment_examples(32, 1))),
                 test_file=str(write_rows(tmp_path / "test.csv", sentiment_examples(32, 2))),
                 label_names=["negative", "positive"])
    out = tmp_path / "run"
    trained = rift.train(task="file", **files, model=tiny_model_dir, epochs=2, batch_size=16, learning_rate=3e-3,
                         max_length=32, output_dir=str(out), retention_examples=0)
    assert isinstance(trained, rift.TrainResult) and trained.output_dir == out
    assert trained.test_accuracy == json.loads((out / "metrics.json").read_text())["test_accuracy"]
    assert not (out / "resume").exists()  # a finished run keeps no resume state by default
    card = ModelCard.load(out / "README.md")
    assert card.data.eval_results[0].metric_value == round(trained.test_accuracy, 4)
    assert "standard fine-tuning" in card.text

    again = rift.train(task="file", **files, model=tiny_model_dir, epochs=2, batch_size=16, learning_rate=3e-3,
                       max_length=32, output_dir=str(out), retention_examples=0, resume=True)
    assert again.metrics == trained.metrics  # finished before: reported again, not retrained

    attacked = rift.attack(model=str(out), task="file", **files, attack=["pwws"], num_examples=16,
                           max_length=32, output_dir=str(tmp_path / "attack"))
    pwws = attacked.attacks["pwws"]
    assert isinstance(pwws, rift.AttackSummary) and pwws.num_examples == 16
    assert 0 <= pwws.robust_accuracy <= pwws.clean_accuracy <= 1
    assert pwws.robust_accuracy_interval[0] <= pwws.robust_accuracy <= pwws.robust_accuracy_interval[1]
    card = ModelCard.load(out / "README.md")
    under = [r for r in card.data.eval_results if "PWWS" in r.metric_name]
    assert len(under) == 1 and under[0].metric_value == round(pwws.robust_accuracy, 4)
    assert under[0].metric_args["num_examples"] == 16 and "population" not in under[0].metric_args
    assert under[0].metric_args["interval_95"] == [round(x, 4) for x in pwws.robust_accuracy_interval]

    evaluated = rift.evaluate(model=str(out), task="file", test_file=files["test_file"],
                              label_names=files["label_names"], max_length=32)
    assert evaluated.accuracy == pytest.approx(trained.test_accuracy)
    assert (out / "robustness.json").exists() and not (out / "eval-file-test.json").exists()
    assert evaluated.output == tmp_path / "run.eval-file-test.json"  # beside the run, not inside it


def test_the_hf_trainer_example_trains_rift_and_logs_its_terms(tmp_path, tiny_model_dir):
    spec = importlib.util.spec_from_file_location("hf_trainer_rift", ROOT / "examples" / "hf_trainer_rift.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    train = write_rows(tmp_path / "train.csv", sentiment_examples(64, 0))
    trainer = example.main(["--model", tiny_model_dir, "--train-file", str(train), "--text-column", "text",
                            "--max-steps", "4", "--batch-size", "8", "--output-dir", str(tmp_path / "out")])
    assert isinstance(trainer, rift.RobustTrainer)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 4
    for entry in logged:  # the objective's terms, through the Trainer's own logging
        assert {"rift/ce", "rift/kl", "rift/mi"} <= entry.keys(), entry
    from transformers import AutoModelForSequenceClassification

    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert saved.config.num_labels == 2


def test_robust_trainer_refuses_bad_datasets_in_one_line(tiny_model_dir):
    import datasets
    import transformers

    tokenizer = rift.load_tokenizer(tiny_model_dir)
    model = rift.load_classifier(tiny_model_dir, ["negative", "positive"])
    args = transformers.TrainingArguments("unused", report_to=[], use_cpu=True)
    for rows, message in (([{"review": "good", "label": 1}], "train_dataset has no column 'text'"),
                          ([{"text": " ", "label": 1}], "row 0: column 'text' must be a non-empty text"),
                          ([{"text": "good", "label": "pos"}], "must hold class ids 0, 1, ..., got 'pos'")):
        with pytest.raises(RiftError, match=message.replace("(", r"\(").replace(".", r"\.")):
            rift.RobustTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                               processing_class=tokenizer, method="ascc")


def test_examples_folder_is_not_a_package():
    assert "examples" not in sys.modules


@pytest.mark.slow
def test_the_readme_library_example_runs_as_written(tmp_path, monkeypatch, capsys):
    from rift.data import resolve_data_dir

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- library-example")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.setenv("RIFT_DATA_DIR", str(resolve_data_dir(None)))
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    test_accuracy, robust, low, high = (float(x.strip("(),")) for x in capsys.readouterr().out.split()[-4:])
    assert 0 <= low <= robust <= high <= 1 and robust <= test_accuracy
    card = (tmp_path / "runs" / "api-rift" / "README.md").read_text()
    assert "accuracy under PWWS (test, n=40" in card and "rift" in card


def test_an_options_object_and_paths_work_through_the_api(tmp_path):
    from rift.api import _arguments

    # an object's preset fills in what it leaves at the defaults, as the command line does; paths may be Paths
    args = _arguments(rift.TrainingArguments, rift.TrainingArguments(preset="study", output_dir=tmp_path / "o",
                                                                      learning_rate=3e-5), {}, rift.PRESETS)
    assert (args.max_train_examples, args.learning_rate, args.output_dir) == (8000, 3e-5, str(tmp_path / "o"))
    assert not hasattr(args, "beta")  # the preset's options of adversarial methods are not standard's
    # the object holds the options of the components it chooses, the preset's among them
    args = rift.TrainingArguments.build(preset="study", method="rift", beta=3.0, output_dir=tmp_path / "o")
    assert isinstance(args, rift.TrainingArguments) and _arguments(rift.TrainingArguments, args, {}) is args
    assert (args.adversary, args.feature, args.alpha, args.beta) == ("discrete", "mean", 0.1, 3.0)
    with pytest.raises(RiftError, match="^--alpha is not read by --method ascc; it is an "
                                        "option of --method rift, rift-uncond, rift-clean$"):
        rift.TrainingArguments.build(preset="study", method="ascc", alpha=0.3, output_dir=tmp_path / "o")
    with pytest.raises(RiftError, match="--batch-size must be >= 1"):
        _arguments(rift.TrainingArguments, rift.TrainingArguments(output_dir="x", batch_size=0), {}, rift.PRESETS)


def test_robust_trainer_checks_its_options_and_evaluates_on_clean_inputs(tmp_path, tiny_model_dir):
    import datasets
    import transformers

    tokenizer = rift.load_tokenizer(tiny_model_dir)
    model = rift.load_classifier(tiny_model_dir, ["negative", "positive"])
    rows = [{"text": e.text, "label": e.label} for e in sentiment_examples(32, 0)]
    args = transformers.TrainingArguments(str(tmp_path / "out"), report_to=[], use_cpu=True, max_steps=2,
                                          per_device_train_batch_size=8, save_strategy="no")
    for options, message in (({"adversery": "random"}, r"unknown option\(s\) adversery"),
                             ({"batch_size": 8}, "batch_size belong to transformers.TrainingArguments")):
        with pytest.raises(RiftError, match=message):
            rift.RobustTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                               robust_options=options)
    trainer = rift.RobustTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, method="rift", robust_options={"preset": "study"})
    assert trainer.robust_args.max_length == 64 and trainer.robust_args.adversary == "discrete"  # the preset's
    trainer.train()
    metrics = trainer.evaluate(eval_dataset=datasets.Dataset.from_list(rows[:16]))
    assert metrics["eval_loss"] > 0  # the model's own cross-entropy on clean inputs, not the objective's
    predictions = trainer.predict(datasets.Dataset.from_list(rows[:16]))
    assert predictions.predictions.shape == (16, 2)
