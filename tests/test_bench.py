"""``rift bench`` on a tiny grid (2 methods x 2 seeds, three attacks): results with means and standard deviations
over seeds, a second run that skips every finished cell, interrupted cells redone, and ``rift report`` on it."""

from __future__ import annotations

import contextlib
import dataclasses
import csv
import io
import gzip
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import sentiment_examples
from test_cli import write_csv

from rift.cli import main
from rift.errors import RiftError
from rift.files import folder_lock
from rift.inputs import fingerprint
from rift.statistics import wilson_interval
from rift.evaluation.paired import exact_mcnemar
from rift.evaluation.robustness import read_results

CELLS = ["file-standard-s0", "file-standard-s1", "file-ascc-s0", "file-ascc-s1"]


def bench(command: list[str]) -> tuple[int, str]:
    """Run rift in-process with a single torch thread (restored after); its exit code and standard output."""
    threads = torch.get_num_threads()
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            code = main(command)
    finally:
        torch.set_num_threads(threads)
    return code, stdout.getvalue()


def write_train_config(root: Path, num_train: int, **options) -> Path:
    """A YAML train config over CSV files of tiny sentiment data (dev and test half the training size)."""
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump({
        "train_file": str(write_csv(root / "train.csv", sentiment_examples(num_train, 0))),
        "dev_file": str(write_csv(root / "dev.csv", sentiment_examples(num_train // 2, 1))),
        "test_file": str(write_csv(root / "test.csv", sentiment_examples(num_train // 2, 2))),
        "text_column": "review", "label_column": "sentiment", "label_names": ["neg", "pos"],
    } | options))
    return config


def run_grid(root: Path, tiny_model_dir: str, seeds: str) -> tuple[list[str], Path, str]:
    """(command, output folder, standard output) of a finished tiny grid of standard and ascc over ``seeds``."""
    train_config = write_train_config(root, 64, learning_rate=3e-3, logging_steps=1)
    out = root / "out"
    command = ["bench", "--task", "file", "--train-config", str(train_config), "--model", tiny_model_dir,
               "--methods", "standard,ascc", "--seeds", seeds, "--attacks", "ascc,pwws,genetic",
               "--num-examples", "8", "--genetic-num-examples", "4", "--population", "4", "--generations", "2",
               "--epochs", "6", "--batch-size", "16", "--max-length", "32", "--ascc-steps", "1",
               "--num-threads", "1", "--output-dir", str(out)]
    code, stdout = bench(command)
    assert code == 0
    return command, out, stdout


@pytest.fixture(scope="module")
def grid(tmp_path_factory, tiny_model_dir) -> tuple[list[str], Path, str]:
    """A finished grid over seeds 0 and 1 that tests only read; a test that changes a grid works on a copy."""
    return run_grid(tmp_path_factory.mktemp("bench"), tiny_model_dir, "0,1")


@pytest.fixture
def grid_copy(grid, tmp_path) -> tuple[list[str], Path]:
    """(command, output folder) of a copy of the grid, for a test of its own."""
    command, out, _ = grid
    copy = Path(shutil.copytree(out, tmp_path / "out"))
    return [*command[:-1], str(copy)], copy


def test_grid_trains_attacks_and_tabulates_mean_and_std_over_seeds(grid):
    _, out, stdout = grid
    assert [line.split()[1].rstrip(":") for line in stdout.splitlines() if " done in " in line] == CELLS
    results = json.loads((out / "results.json").read_text())
    assert [c["directory"] for c in results["cells"]] == [f"cells/{name}" for name in CELLS]
    for name in CELLS:
        cell = out / "cells" / name
        assert (cell / "metrics.json").exists() and (cell / "model.safetensors").exists()
        attacks = json.loads((cell / "attacks" / "results.json").read_text())["attacks"]
        assert {n: a["num_examples"] for n, a in attacks.items()} == {"ascc": 8, "pwws": 8, "genetic": 4}
    for record in results["cells"]:
        assert record["train_seconds"] > 0 and record["pwws/seconds"] > 0
        assert 0 <= record["retention_cka"] <= 1 + 1e-6 and record["retention_mi_nce"] is not None
        assert 0 <= record["genetic/robust_accuracy"] <= record["genetic/clean_accuracy"] <= 1

    summary = {row["method"]: row for row in results["summary"]}
    assert list(summary) == ["standard", "ascc"] and summary["ascc"]["seeds"] == [0, 1]
    for method, row in summary.items():
        cells = [c for c in results["cells"] if c["method"] == method]
        for name in ("test_accuracy", "retention_cka", "pwws/robust_accuracy", "ascc/attack_success_rate"):
            values = [c[name] for c in cells]
            assert row["metrics"][name]["mean"] == pytest.approx(statistics.fmean(values))
            assert row["metrics"][name]["std"] == pytest.approx(statistics.stdev(values))

    with open(out / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["task"], r["method"], r["seeds"]) for r in rows] == [("file", "standard", "2"), ("file", "ascc", "2")]
    assert float(rows[1]["genetic/robust_accuracy_mean"]) == pytest.approx(
        summary["ascc"]["metrics"]["genetic/robust_accuracy"]["mean"])
    markdown = (out / "results.md").read_text()
    assert "| file | ascc | genetic |" in markdown and " ± " in markdown and "CKA" in markdown
    assert "| file | ascc − standard | 2 |" in markdown
    for record in results["cells"]:  # one row per cell with its own numbers: the worst case, then discrete attacks
        low, high = wilson_interval(record["pwws/num_robust"], 8)
        worst_low, worst_high = record["worst-case/robust_accuracy_interval"]
        assert record["pwws/num_robust"] == round(8 * record["pwws/robust_accuracy"])
        assert (f"| file | {record['method']} | {record['seed']} | {record['test_accuracy']:.3f} | "
                f"{record['dev_accuracy']:.3f} | {record['worst-case/robust_accuracy']:.3f} [{worst_low:.3f}, "
                f"{worst_high:.3f}] | {record['pwws/robust_accuracy']:.3f} [{low:.3f}, {high:.3f}] |") in markdown
    for method, row in summary.items():  # the interval of the examples pooled over seeds
        pooled = sum(c["genetic/num_robust"] for c in results["cells"] if c["method"] == method)
        assert row["metrics"]["genetic/robust_accuracy"]["interval"] == pytest.approx(list(wilson_interval(pooled, 8)))
    assert "| file | ascc | ascc (training adversary) |" in markdown
    # the worst case over the word-substitution attacks (pwws and genetic, not ascc): a hand count over the examples
    # both attacked, its row first among each method's attacks
    for record in results["cells"]:
        statuses = {name: {r["index"]: r["status"] for r in map(json.loads, (out / record["directory"] / "attacks" /
                                                                           f"examples_{name}.jsonl").read_text().splitlines())}
                    for name in ("pwws", "genetic")}
        common = statuses["pwws"].keys() & statuses["genetic"].keys()
        held = sum(statuses["pwws"][i] == statuses["genetic"][i] == "failed" for i in common)
        assert (len(common), record["worst-case/num_examples"], record["worst-case/num_robust"]) == (4, 4, held)
        assert record["worst-case/robust_accuracy"] <= record["genetic/robust_accuracy"]
        assert record["worst-case/robust_accuracy_interval"] == pytest.approx(list(wilson_interval(held, 4)))
    rows = [line for line in markdown.splitlines() if line.startswith("| file | ascc | ")]
    assert rows[2].startswith("| file | ascc | worst case |")  # the methods' and models' rows, then the attacks'
    # the methods at a glance: clean, the worst case first with its pooled interval, the cost over standard's
    ascc = summary["ascc"]["metrics"]
    worst = ascc["worst-case/robust_accuracy"]
    cost = ascc["train_seconds"]["mean"] / summary["standard"]["metrics"]["train_seconds"]["mean"]
    pwws = ascc["pwws/robust_accuracy"]
    assert rows[0].startswith(f"| file | ascc | 2 | {ascc['test_accuracy']['mean']:.3f} | {worst['mean']:.3f} "
                              f"[{worst['interval'][0]:.3f}, {worst['interval'][1]:.3f}] | {pwws['mean']:.3f} "
                              f"[{pwws['interval'][0]:.3f}, {pwws['interval'][1]:.3f}] | ")
    assert f"| {cost:.1f}x | {ascc['retention_cka']['mean']:.3f} |" in rows[0]
    assert "| file | standard | 2 |" in markdown and "| 1.0x |" in markdown

    [comparison] = results["comparisons"]
    assert (comparison["method"], comparison["baseline"], comparison["seeds"]) == ("ascc", "standard", [0, 1])
    assert list(comparison["held_only"]) == ["worst-case", "ascc", "pwws", "genetic"]
    records = {(c["method"], c["seed"]): c for c in results["cells"]}
    for name in ("test_accuracy", "retention_mi_nce", "pwws/robust_accuracy"):
        assert comparison["differences"][name]["values"] == pytest.approx(
            [records["ascc", seed][name] - records["standard", seed][name] for seed in (0, 1)])
    for attack, held in comparison["held_only"].items():
        # examples only one model holds differ in number exactly as the two models' robust counts do
        attacked = 4 if attack in ("genetic", "worst-case") else 8
        robust_counts = [round(records[method, seed][f"{attack}/robust_accuracy"] * attacked)
                         for method in ("ascc", "standard") for seed in (0, 1)]
        assert held["method"] - held["baseline"] == sum(robust_counts[:2]) - sum(robust_counts[2:])
        assert held["examples"] == 2 * attacked
        assert held["p_value"] == pytest.approx(exact_mcnemar(held["method"], held["baseline"]))
    assert markdown in stdout  # the table is printed at the end


def test_second_run_skips_every_finished_cell(grid_copy):
    command, out = grid_copy
    before = {name: (out / "cells" / name / "metrics.json").stat().st_mtime_ns for name in CELLS}
    results = (out / "results.json").read_text()
    code, stdout = bench(command)
    assert code == 0
    assert sum("skipped" in line for line in stdout.splitlines()) == 4 and " done in " not in stdout
    assert before == {name: (out / "cells" / name / "metrics.json").stat().st_mtime_ns for name in CELLS}
    assert json.loads((out / "results.json").read_text())["cells"] == json.loads(results)["cells"]


def test_a_finished_cell_whose_data_changed_is_not_skipped_as_finished(grid_copy, capsys):
    command, out = grid_copy
    train = Path(yaml.safe_load(Path(command[command.index("--train-config") + 1]).read_text())["train_file"])
    original = train.read_bytes()
    try:
        train.write_bytes(original.replace(b"\n", b"\n\n", 1))  # one more blank line: other bytes, same name
        assert bench(command)[0] == 2
        assert "train.csv changed since it was read there" in capsys.readouterr().err
        code, stdout = bench([*command, "--allow-changed-data"])
        assert code == 0 and sum("skipped" in line for line in stdout.splitlines()) == 4
        inputs = json.loads((out / "cells" / CELLS[0] / "rift_inputs.json").read_text())
        assert [Path(path).name for path in inputs["changed_data"]] == ["train.csv"]
    finally:
        train.write_bytes(original)  # the module's grid reads it too


def test_interrupted_cells_are_redone(tmp_path, tiny_model_dir):
    command, out, _ = run_grid(tmp_path, tiny_model_dir, "0")  # its own grid: an attack folder does not move
    standard, ascc = out / "cells" / "file-standard-s0", out / "cells" / "file-ascc-s0"
    trained = json.loads((standard / "metrics.json").read_text())
    attacked = json.loads((ascc / "attacks" / "results.json").read_text())["attacks"]
    (standard / "metrics.json").unlink()  # killed after its last training step
    (ascc / "attacks" / "results.json").unlink()  # killed while attacking: genetic had saved 2 of its examples
    genetic = ascc / "attacks" / "examples_genetic.jsonl"
    genetic.write_text("".join(genetic.read_text().splitlines(keepends=True)[:2]))
    code, stdout = bench([*command, "--save-steps", "2"])  # a checkpoint frequency of its own is allowed
    assert code == 0
    assert [line.split()[1].rstrip(":") for line in stdout.splitlines() if " done in " in line] == [
        "file-standard-s0", "file-ascc-s0"]
    redone = json.loads((standard / "metrics.json").read_text())
    assert redone["evaluations"] == trained["evaluations"]  # resumed from its saved state, not trained again
    assert redone["test_accuracy"] == trained["test_accuracy"]
    again = json.loads((ascc / "attacks" / "results.json").read_text())["attacks"]
    for name, summary in attacked.items():  # the same results; only the re-attacked examples' times differ
        assert {k: v for k, v in again[name].items() if k != "seconds_per_example"} == {
            k: v for k, v in summary.items() if k != "seconds_per_example"}
    assert len(genetic.read_text().splitlines()) == 4


def test_cells_side_by_side_equal_the_cells_one_after_another(grid, tmp_path, capsys):
    command, out, _ = grid
    side = tmp_path / "side"
    jobs = [*command[:command.index("--seeds")], "--seeds", "0", *command[command.index("--seeds") + 2:-1],
            str(side), "--jobs", "2"]
    code, stdout = bench(jobs)
    assert code == 0
    lines = stdout.splitlines()
    assert sorted(line.split()[1].rstrip(":") for line in lines if " done in " in line) == [
        "file-ascc-s0", "file-standard-s0"]
    err = capsys.readouterr().err
    for name in ("file-standard-s0", "file-ascc-s0"):
        assert f"{name}: started, output in {side / 'logs' / name}.log" in stdout
        log = (side / "logs" / f"{name}.log").read_text()
        assert f"no resume state in {side / 'cells' / name}" in log and "pwws: 100%" in log  # progress bars too
        trained, alone = (json.loads((root / "cells" / name / "metrics.json").read_text()) for root in (side, out))
        assert trained["test_accuracy"] == alone["test_accuracy"] and trained["evaluations"] == alone["evaluations"]
        for attack in ("pwws", "genetic", "ascc"):  # the same adversarial examples, example by example
            examples = [(root / "cells" / name / "attacks" / f"examples_{attack}.jsonl").read_text().splitlines()
                        for root in (side, out)]
            drop_times = [[{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in lines]
                          for lines in examples]
            assert drop_times[0] == drop_times[1]
    assert "no resume state" not in err and "pwws: " not in err  # none of it reaches the bench's own output
    results = json.loads((side / "results.json").read_text())
    assert [c["directory"] for c in results["cells"]] == ["cells/file-standard-s0", "cells/file-ascc-s0"]
    assert json.loads((side / "results.json").read_text())["settings"]["jobs"] == 2
    code, stdout = bench(jobs)  # finished cells are checked in the bench's own process
    assert code == 0 and sum("skipped (finished before)" in line for line in stdout.splitlines()) == 2
    assert "started" not in stdout

    # a cell that fails stops the next from starting, lets the running one finish, and is one line naming its log
    shutil.rmtree(side / "cells" / "file-ascc-s0")
    with folder_lock(side / "cells" / "file-rift-s0", "a test"):  # held here: rift-s0's own process cannot write it
        code, stdout = bench([*jobs, "--methods", "rift,ascc,l2sp"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "1 of the cells failed (1 not started): file-rift-s0: " in err and "(a test, pid" in err
    assert f"(output in {side / 'logs' / 'file-rift-s0'}.log)" in err
    assert (side / "cells" / "file-ascc-s0" / "metrics.json").exists()  # ran beside the failure, kept
    assert not (side / "cells" / "file-l2sp-s0").exists() and "file-l2sp-s0" not in stdout


def test_a_killed_side_by_side_bench_takes_its_cells_with_it_and_they_resume(grid, tmp_path):
    command, out, _ = grid
    side = tmp_path / "side"
    jobs = [*command[:command.index("--seeds")], "--seeds", "0", *command[command.index("--seeds") + 2:-1],
            str(side), "--jobs", "2", "--save-steps", "2"]
    bench_process = subprocess.Popen([sys.executable, "-m", "rift.cli", *jobs], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
    started = [bench_process.stdout.readline() for _ in range(2)]
    assert all(": started, output in " in line for line in started), started
    names = ("file-standard-s0", "file-ascc-s0")
    deadline = time.monotonic() + 120
    while not all((side / "cells" / name / "resume").is_dir() for name in names):  # both are training
        assert time.monotonic() < deadline and bench_process.poll() is None
        time.sleep(0.2)
    bench_process.send_signal(signal.SIGKILL)
    bench_process.wait()
    deadline = time.monotonic() + 30
    for name in names:  # the cells' processes died with the bench, so their folders are free again
        while True:
            try:
                with folder_lock(side / "cells" / name, "a test"):
                    break
            except RiftError:
                assert time.monotonic() < deadline, f"{name} is still written after its bench was killed"
                time.sleep(0.5)
    assert not all((side / "cells" / name / "metrics.json").exists() for name in names)
    code, _ = bench(jobs)
    assert code == 0
    for name in names:  # resumed, they end where the cells trained one after another ended
        trained, alone = (json.loads((root / "cells" / name / "metrics.json").read_text()) for root in (side, out))
        assert trained["test_accuracy"] == alone["test_accuracy"] and trained["evaluations"] == alone["evaluations"]


def test_finished_cells_refuse_other_training_options(grid, capsys):
    command, _, _ = grid
    assert main([*command, "--learning-rate", "0.5"]) == 2
    assert "learning_rate" in capsys.readouterr().err


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps one process-wide state; this test needs its own mixed precision, and must not leave it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_attacks_run_in_the_precision_of_a_bf16_training(tmp_path, tiny_model_dir, fresh_accelerate_state):
    # a grid that trains in bf16 (the cpu preset does) once crashed at its first attack: the attack asked
    # Accelerate for full precision in a process whose state the training had fixed at bf16
    train_config = write_train_config(tmp_path, 32, mixed_precision="bf16")
    out = tmp_path / "out"
    code, _ = bench(["bench", "--task", "file", "--train-config", str(train_config), "--model", tiny_model_dir,
                     "--methods", "standard", "--attacks", "ascc,pwws", "--num-examples", "4", "--epochs", "1",
                     "--batch-size", "16", "--max-length", "32", "--num-threads", "1", "--output-dir", str(out)])
    assert code == 0
    cell = out / "cells" / "file-standard-s0"
    assert yaml.safe_load((cell / "rift_config.yaml").read_text())["mixed_precision"] == "bf16"
    attacks = json.loads((cell / "attacks" / "results.json").read_text())
    assert attacks["mixed_precision"] == "bf16"
    assert set(attacks["attacks"]) == {"ascc", "pwws"}


def test_bad_grids_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", "--methods", "standard,nope", "--output-dir", str(tmp_path)]) == 2
    assert "--methods: unknown method 'nope'" in capsys.readouterr().err
    assert main(["bench", "--attacks", "fgsm", "--output-dir", str(tmp_path)]) == 2
    assert "--attacks: 'fgsm' is not one of: ascc, pwws, pwws-wordnet, genetic, textfooler" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # a choice argparse checks: --help lists the presets
        main(["bench", "--preset", "gpu", "--output-dir", str(tmp_path)])
    assert stopped.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err
    for entry, reason in (("standard+random", "standard trains on clean inputs only"),
                          ("ascc+nope", "unknown adversary 'nope'")):
        assert main(["bench", "--methods", f"ascc,{entry}", "--output-dir", str(tmp_path)]) == 2
        assert f"{entry}: {reason}" in capsys.readouterr().err


def test_a_grid_compares_one_method_against_two_adversaries(tmp_path, tiny_model_dir):
    train_config = write_train_config(tmp_path, 32, learning_rate=3e-3)
    out = tmp_path / "out"
    code, stdout = bench(["bench", "--task", "file", "--train-config", str(train_config), "--model", tiny_model_dir,
                          "--methods", "ascc,ascc+random", "--adversary", "ascc", "--seeds", "0", "--attacks", "pwws",
                          "--num-examples", "8", "--epochs", "2", "--batch-size", "16", "--max-length", "32",
                          "--ascc-steps", "1", "--num-threads", "1", "--output-dir", str(out)])
    assert code == 0
    adversaries = {cell: yaml.safe_load((out / "cells" / cell / "rift_config.yaml").read_text())["adversary"]
                   for cell in ("file-ascc-s0", "file-ascc+random-s0")}
    assert adversaries == {"file-ascc-s0": "ascc", "file-ascc+random-s0": "random"}
    results = json.loads((out / "results.json").read_text())
    [comparison] = results["comparisons"]
    assert (comparison["method"], comparison["baseline"]) == ("ascc+random", "ascc")
    assert comparison["held_only"]["pwws"]["examples"] == 8
    for cell in results["cells"]:  # every change of a successful attack is judged against its own adversary
        records = [json.loads(line) for line in
                   (out / cell["directory"] / "attacks" / "examples_pwws.jsonl").read_text().splitlines()]
        assert all(c["in_training_surface"] is not None for r in records for c in r["changes"])
    assert "outside training surface" in stdout


def test_report_of_a_grid(grid, tmp_path):
    _, out, _ = grid
    code, stdout = bench(["report", str(out), "--output", str(tmp_path / "report.html")])
    assert code == 0 and "report.html" in stdout
    page = (tmp_path / "report.html").read_text()
    assert page.count('<table class="results">') == 5  # methods, models, attacks, paired differences, cells
    # robustness, 4 training-curve figures, retention
    assert page.count('<img class="plot"') == 6
    assert page.count("<details") == 4 and '<mark class="new">' in page
    assert "http://" not in page and "https://" not in page
    # the clean-against-worst-case panel comes first and holds every cell
    from rift.reporting.report import robustness_points
    results = json.loads((out / "results.json").read_text())
    points = robustness_points(results["cells"], ["worst-case", "pwws"])
    for cell in results["cells"]:
        assert (cell["worst-case/clean_accuracy"], cell["worst-case/robust_accuracy"],
                cell["worst-case/robust_accuracy_interval"]) in points[cell["method"]]["worst-case"]


def test_a_record_without_weights_is_tabulated_reported_and_continued(grid_copy, tmp_path, capsys):
    command, out = grid_copy
    record = tmp_path / "record"
    (out / "cells" / "file-standard-s2").mkdir()  # a cell whose training never finished is left out
    assert main(["record", str(out), str(record)]) == 0
    assert "left out (training not finished): file-standard-s2" in capsys.readouterr().out
    files = [path for path in record.rglob("*") if path.is_file()]
    assert not [path for path in files if path.suffix in (".safetensors", ".bin") or "resume" in path.parts]
    assert sum(path.stat().st_size for path in files) < 2_000_000
    assert sorted(path.name for path in (record / "cells").iterdir()) == sorted(CELLS)
    # every per-example file is kept gzip-compressed, and reads back as the original
    per_example = sorted(path.relative_to(record) for path in files if path.name.startswith("examples_"))
    assert per_example and all(path.name.endswith(".jsonl.gz") for path in per_example)
    for path in per_example:
        plain = (out / path).with_suffix("")
        assert gzip.decompress((record / path).read_bytes()) == plain.read_bytes()
        assert read_results(record / path.with_suffix("")) == read_results(plain)

    on_record = [*command[:-1], str(record)]
    code, stdout = bench(on_record)  # every cell is skipped and tabulated as in the original folder
    assert code == 0 and sum("skipped" in line for line in stdout.splitlines()) == 4
    original = json.loads((out / "results.json").read_text())
    recorded = json.loads((record / "results.json").read_text())
    assert recorded["cells"] == original["cells"] and recorded["comparisons"] == original["comparisons"]
    assert (record / "results.md").read_text() == (out / "results.md").read_text()
    assert bench(["report", str(record)])[0] == 0
    assert (record / "report.html").read_text().count('<table class="results">') == 5

    capsys.readouterr()
    assert main([*on_record, "--attacks", "ascc,pwws,genetic,textfooler"]) == 2  # a new attack needs the weights
    assert "record without weights" in capsys.readouterr().err


def test_a_record_never_overwrites_another_run(grid_copy, tmp_path, capsys):
    _, out = grid_copy
    record = tmp_path / "record"
    assert main(["record", str(out), str(record)]) == 0
    assert main(["record", str(out), str(record)]) == 0  # the same runs again: their record is brought up to date
    kept = {p: p.read_bytes() for p in record.rglob("*") if p.is_file()}
    other = tmp_path / "other"  # another bench whose cell of the same name is another run
    shutil.copytree(out, other)
    metrics = other / "cells" / "file-ascc-s1" / "metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()) | {"train_seconds": 1.0}))
    capsys.readouterr()
    assert main(["record", str(other), str(record)]) == 2
    assert capsys.readouterr().err.strip() == (f"rift: error: {record / 'cells' / 'file-ascc-s1'} holds another run "
                                               f"than {other / 'cells' / 'file-ascc-s1'} (their metrics.json differ); "
                                               "record into another folder")
    assert {p: p.read_bytes() for p in record.rglob("*") if p.is_file()} == kept  # nothing copied
    # the same metrics but other data read (a fingerprint that differs): another run too
    metrics.write_text((out / "cells" / "file-ascc-s1" / "metrics.json").read_text())
    inputs = other / "cells" / "file-ascc-s1" / "rift_inputs.json"
    inputs.write_text(json.dumps({"files": {"/elsewhere/train.csv": "0" * 64}}))
    assert main(["record", str(other), str(record)]) == 2
    assert "(their rift_inputs.json differ)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in record.rglob("*") if p.is_file()} == kept


def test_a_record_whose_weights_are_gone_is_trained_again_checked_and_ends_as_the_uninterrupted_run(grid_copy,
                                                                                                      tmp_path, capsys):
    command, out = grid_copy
    record = tmp_path / "record"
    assert main(["record", str(out), str(record)]) == 0
    for name in CELLS:  # the record keeps the fingerprint of the weights it leaves behind
        assert json.loads((record / "cells" / name / "rift_weights.json").read_text()) == {
            "model.safetensors": fingerprint(out / "cells" / name / "model.safetensors")}
    # a session ended in the middle of one cell's pwws attack, on a machine that kept nothing but the record
    cell = record / "cells" / "file-ascc-s1"
    summary = json.loads((cell / "attacks" / "results.json").read_text())
    del summary["attacks"]["pwws"]
    (cell / "attacks" / "results.json").write_text(json.dumps(summary))
    pwws = cell / "attacks" / "examples_pwws.jsonl.gz"
    lines = gzip.decompress(pwws.read_bytes()).decode().splitlines(keepends=True)
    pwws.write_bytes(gzip.compress("".join(lines[:3]).encode()))
    one_cell = [*command[:-1], str(record)]
    one_cell[one_cell.index("--methods") + 1], one_cell[one_cell.index("--seeds") + 1] = "ascc", "1"
    recorded = {path: path.read_bytes() for path in cell.iterdir() if path.is_file()}

    # weights trained again must be those the results came from: other ones are refused, and nothing moves in
    kept = cell / "rift_weights.json"
    kept.write_text(json.dumps({"model.safetensors": "0" * 64}))
    capsys.readouterr()
    assert bench([*one_cell, "--retrain-missing-weights"])[0] == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"rift: error: {cell}: training it again gave other weights (model.safetensors) than those its recorded "
        "results came from (another torch version, kind of CPU or thread count?); its attacks cannot continue on "
        "them: train it again in another --output-dir")
    assert not (cell / "retrained").exists() and not (cell / "model.safetensors").exists()

    # a record made before rift record kept the fingerprints: those its attacks read are checked instead
    kept.unlink()
    assert bench([*one_cell, "--retrain-missing-weights"])[0] == 0
    assert "the weights trained again are those its results came from (model.safetensors)" in capsys.readouterr().err
    assert fingerprint(cell / "model.safetensors") == fingerprint(out / "cells" / "file-ascc-s1" / "model.safetensors")
    assert not (cell / "retrained").exists()
    for name in ("metrics.json", "rift_config.yaml", "train_log.jsonl", "rift_inputs.json", "config.json"):
        assert (cell / name).read_bytes() == recorded[cell / name]  # the training's record stays the original run's
    # the attack went on from its third example and ends as the uninterrupted run's
    continued, original = (read_results(folder / "examples_pwws.jsonl")
                           for folder in (cell / "attacks", out / "cells" / "file-ascc-s1" / "attacks"))
    assert len(continued) == 8 and {i: dataclasses.replace(r, seconds=0) for i, r in continued.items()} == \
        {i: dataclasses.replace(r, seconds=0) for i, r in original.items()}
    final = json.loads((cell / "attacks" / "results.json").read_text())["attacks"]["pwws"]
    reference = json.loads((out / "cells" / "file-ascc-s1" / "attacks" / "results.json").read_text())["attacks"]["pwws"]
    assert final["robust_accuracy"] == reference["robust_accuracy"] and final["num_examples"] == 8


def test_a_protocol_bench_attacks_at_the_protocols_length_and_keeps_the_training_data(tmp_path):
    from rift.arguments import BenchArguments
    from rift.bench import attack_arguments, attack_groups, training_arguments
    from rift.evaluation.records import grid
    from rift.evaluation.attack_run import apply_protocol

    args = BenchArguments(output_dir=str(tmp_path), methods=["ascc"], attacks=["pwws", "genetic"], preset="cpu",
                          protocol="textdefender")
    [cell] = grid(args)
    train_args = training_arguments(args, cell)
    assert train_args.max_length == 64  # the cpu preset trains on 64 tokens
    [call, genetic] = attack_groups(args)
    assert (call.names, call.protocol, call.num_examples, genetic.names) == (["pwws"], "textdefender", 200, ["genetic"])
    attack_args = attack_arguments(train_args, args, cell, call)
    assert attack_args.protocol == "textdefender" and attack_args.max_train_examples == 8000
    protocol_args = apply_protocol(attack_args, "sst2")  # not refused: the protocol's 128 tokens apply
    assert (protocol_args.max_length, protocol_args.max_changed_share, protocol_args.num_examples) == (128, 0.3, 200)
    plain_args = dataclasses.replace(args, protocol=None)
    plain = attack_arguments(train_args, plain_args, cell, attack_groups(plain_args)[0])
    assert plain.max_length == 64 and plain.protocol is None  # without one, the attack reads as the model was trained
    # an attack of its own protocol beside the others: its own call, into attacks@PROTOCOL/
    mixed = dataclasses.replace(plain_args, attacks=["pwws", "textfooler@textdefender", "genetic"], num_examples=1821,
                                genetic_num_examples=200)
    calls = attack_groups(mixed)
    assert [(c.names, c.protocol, c.entries, c.num_examples) for c in calls] == [
        (["pwws"], None, ["pwws"], 1821), (["textfooler"], "textdefender", ["textfooler@textdefender"], 1000),
        (["genetic"], None, ["genetic"], 200)]  # the protocol's call attacks its own 1,000 at most
    defended = attack_arguments(train_args, mixed, cell, calls[1])
    assert defended.protocol == "textdefender" and defended.output_dir.endswith("attacks@textdefender")
    assert attack_arguments(train_args, mixed, cell, calls[0]).output_dir.endswith("/attacks")


def test_an_attack_under_its_own_protocol_runs_beside_the_others_and_joins_the_worst_case(tmp_path, tiny_model_dir,
                                                                                         capsys):
    train_config = write_train_config(tmp_path, 32, learning_rate=3e-3)
    out = tmp_path / "out"
    command = ["bench", "--task", "file", "--train-config", str(train_config), "--model", tiny_model_dir,
               "--methods", "standard", "--attacks", "pwws,pwws@textdefender", "--num-examples", "8", "--epochs", "1",
               "--batch-size", "16", "--max-length", "32", "--num-threads", "1", "--output-dir", str(out)]
    assert bench(command)[0] == 0
    cell = out / "cells" / "file-standard-s0"
    plain = json.loads((cell / "attacks" / "results.json").read_text())
    defended = json.loads((cell / "attacks@textdefender" / "results.json").read_text())
    assert plain["protocol"] is None and defended["protocol"]["name"] == "textdefender"
    [record] = json.loads((out / "results.json").read_text())["cells"]
    statuses = [{r["index"]: r["status"] for r in map(json.loads, (cell / folder / "examples_pwws.jsonl")
                                                     .read_text().splitlines())}
                for folder in ("attacks", "attacks@textdefender")]
    common = statuses[0].keys() & statuses[1].keys()
    held = sum(statuses[0][i] == statuses[1][i] == "failed" for i in common)
    assert (record["worst-case/num_examples"], record["worst-case/num_robust"]) == (len(common), held)
    assert record["pwws@textdefender/num_examples"] == len(statuses[1])
    assert "| pwws@textdefender |" in (out / "results.md").read_text()
    assert bench(["report", str(out)])[0] == 0  # the report shows the protocol's examples from their own folder
    assert "pwws@textdefender: " in (out / "report.html").read_text()
    assert main(["record", str(out), str(tmp_path / "record")]) == 0  # the record keeps every attack folder
    assert (tmp_path / "record" / "cells" / "file-standard-s0" / "attacks@textdefender" / "examples_pwws.jsonl.gz").is_file()
    assert main(["bench", *command[1:-6], "--attacks", "pwws@nowhere", "--output-dir", str(out)]) == 2
    assert "'pwws@nowhere' is not one of: ascc, pwws" in capsys.readouterr().err


def test_arms_train_their_own_options_and_one_grid_is_attacked_on_dev_and_on_test(tmp_path, tiny_model_dir):
    train_config = write_train_config(tmp_path, 32, learning_rate=3e-3)
    arms = tmp_path / "arms.yaml"
    arms.write_text(yaml.safe_dump({"ascc-beta0": {"method": "ascc", "beta": 0.0, "epochs": 1},
                                    "ascc-beta3": {"method": "ascc", "beta": 3.0, "adversary": "random"}}))
    out = tmp_path / "out"
    command = ["bench", "--task", "file", "--train-config", str(train_config), "--model", tiny_model_dir,
               "--arms", str(arms), "--methods", "standard,ascc-beta0,ascc-beta3", "--attacks", "pwws",
               "--num-examples", "4", "--epochs", "2", "--batch-size", "16", "--max-length", "32", "--ascc-steps", "1",
               "--num-threads", "1", "--output-dir", str(out)]
    code, _ = bench([*command, "--split", "dev"])
    assert code == 0
    saved = {name: yaml.safe_load((out / "cells" / f"file-{name}-s0" / "rift_config.yaml").read_text())
             for name in ("standard", "ascc-beta0", "ascc-beta3")}
    # an arm's options override the bench's (epochs), the bench's apply where the arm is silent; a cell keeps only
    # its components' options (standard reads no beta)
    assert [(c["method"], c.get("beta"), c["epochs"], c["adversary"]) for c in saved.values()] == [
        ("standard", None, 2, "ascc"), ("ascc", 0.0, 1, "ascc"), ("ascc", 3.0, 2, "random")]
    assert "ascc_steps" not in saved["ascc-beta3"] and saved["ascc-beta0"]["ascc_steps"] == 1
    assert all(c["learning_rate"] == 3e-3 and c["batch_size"] == 16 for c in saved.values())
    dev = json.loads((out / "results-dev.json").read_text())
    assert dev["arms"]["ascc-beta3"] == {"method": "ascc", "beta": 3.0, "adversary": "random"}
    assert [row["method"] for row in dev["summary"]] == ["standard", "ascc-beta0", "ascc-beta3"]
    assert [(c["method"], c["baseline"]) for c in dev["comparisons"]][:2] == [
        ("ascc-beta0", "standard"), ("ascc-beta3", "standard")]
    assert not (out / "results.json").exists()
    cell = out / "cells" / "file-ascc-beta3-s0"
    assert json.loads((cell / "attacks-dev" / "results.json").read_text())["split"] == "dev"
    assert not (cell / "attacks").exists()

    trained = {c["directory"]: (out / c["directory"] / "metrics.json").stat().st_mtime_ns for c in dev["cells"]}
    code, stdout = bench(command)  # the test split: the same models, attacked again
    assert code == 0 and " done in " in stdout
    assert trained == {name: (out / name / "metrics.json").stat().st_mtime_ns for name in trained}
    test = json.loads((out / "results.json").read_text())
    assert json.loads((cell / "attacks" / "results.json").read_text())["split"] == "test"
    assert [c["test_accuracy"] for c in test["cells"]] == [c["test_accuracy"] for c in dev["cells"]]
    assert json.loads((out / "results-dev.json").read_text())["cells"] == dev["cells"]  # the dev tables stay
    assert bench(["report", str(out), "--split", "dev"])[0] == 0 and (out / "report-dev.html").exists()
    record = tmp_path / "record"
    assert main(["record", str(out), str(record)]) == 0
    assert {p.name for p in record.iterdir()} == {"cells", "results.json", "results.csv", "results.md",
                                                  "results-dev.json", "results-dev.csv", "results-dev.md"}
    assert {p.name for p in (record / "cells" / cell.name).iterdir()} >= {"attacks", "attacks-dev"}
    code, stdout = bench([*command[:-1], str(record), "--split", "dev"])  # a record goes on from what it holds
    assert code == 0 and sum("skipped" in line for line in stdout.splitlines()) == 3


def test_bad_arms_are_one_line_errors(tmp_path, capsys):
    arms = tmp_path / "arms.yaml"
    for content, reason in (
            ({"a": {"beta": 1}}, "arm a: expected a mapping of rift train options with the method"),
            ({"a": {"method": "ascc", "bta": 1}}, "arm a: bta cannot be set per arm"),
            ({"a": {"method": "ascc", "seed": 1}}, "arm a: seed cannot be set per arm"),
            ({"a": {"method": "ascc", "beta": -1}}, "arm a: --beta must be >= 0"),
            ({"a": {"method": "nope"}}, "arm a: "),
            ({"rift": {"method": "ascc"}}, "arm rift: an arm's name is"),
            ({"a/b": {"method": "ascc"}}, "arm a/b: an arm's name is")):
        arms.write_text(yaml.safe_dump(content))
        name = next(iter(content))
        assert main(["bench", "--arms", str(arms), "--methods", name, "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1, err
    assert main(["bench", "--arms", str(tmp_path / "none.yaml"), "--output-dir", str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_study_recorded_a_cell_at_a_time_keeps_the_tables_of_all_its_cells(tmp_path, tiny_model_dir):
    train_config = write_train_config(tmp_path, 32, learning_rate=3e-3)
    common = ["--task", "file", "--train-config", str(train_config), "--model", tiny_model_dir, "--attacks", "pwws",
              "--num-examples", "4", "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--num-threads", "1"]
    record = tmp_path / "record"
    for method in ("standard", "ascc"):  # two benches, each of one cell, as two sessions would run them
        out = tmp_path / method
        assert bench(["bench", *common, "--methods", method, "--output-dir", str(out)])[0] == 0
        assert main(["record", str(out), str(record)]) == 0
    results = json.loads((record / "results.json").read_text())
    # standard stays the baseline though the last call named ascc alone: the order is the study's, not the calls'
    assert [cell["method"] for cell in results["cells"]] == ["standard", "ascc"]
    assert [(c["method"], c["baseline"]) for c in results["comparisons"]] == [("ascc", "standard")]
    markdown = (record / "results.md").read_text()
    assert "| file | ascc − standard | 1 |" in markdown
    assert markdown.index("| file | standard | 1 |") < markdown.index("| file | ascc | 1 |")
