"""Nothing lost on a kill: train, attack, bench and record killed at every kind of write they make (after a temporary
file is written, between renames, half-way through a file, half-way through a removal) and at random moments, then
run again, end exactly where an uninterrupted run ends.

The kills come from ``tests/kill_driver.py``, which forks each run from one process that has imported rift, and
kills it at the n-th write event with ``os._exit`` (no cleanup runs, as under SIGKILL) or with SIGKILL after a delay.
Each kind of write point (the file it writes, its checkpoint number aside) is killed at its first occurrence."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_distributed import data_options

from rift.run_folder import LOCK_FILE

pytestmark = pytest.mark.slow  # each test forks dozens of runs
DRIVER = Path(__file__).with_name("kill_driver.py")
RANDOM_KILLS = 3


def drive(tmp_path: Path, groups: list[list[dict]]) -> list[list[dict]]:
    """The outcomes of ``kill_driver.py``'s runs, by group (a group's runs follow one another; groups run side by
    side)."""
    plan, outcomes = tmp_path / "plan.json", tmp_path / "outcomes.json"
    plan.write_text(json.dumps(groups))
    finished = subprocess.run([sys.executable, str(DRIVER), str(plan), str(outcomes)], cwd=tmp_path, timeout=1500)
    assert finished.returncode == 0, (tmp_path / "outcomes.json.log").read_text()[-3000:]
    return json.loads(outcomes.read_text())


def kill_points(events: list[list[str]], root: Path) -> list[int]:
    """The first event of each kind of write point: its kind and its file, with numbers (checkpoints, steps) aside."""
    seen, points = set(), []
    for number, (kind, path) in enumerate(events):
        signature = (kind, re.sub(r"\d+", "N", str(Path(path).relative_to(root)) if Path(path).is_relative_to(root)
                                  else Path(path).name))
        if signature not in seen:
            seen.add(signature)
            points.append(number)
    return points


def killed_and_resumed(tmp_path: Path, command: list[str], resume: list[str], folder_option: list[str],
                       folder_name: str, seconds: float) -> tuple[dict, list[tuple[str, dict, dict]]]:
    """Runs ``command`` into ``folder_name`` uninterrupted, then once per kill point and random moment into a folder
    of its own, each followed by ``command + resume`` into the same folder. Returns the uninterrupted run's outcome
    and, per kill, its description, the killed run's outcome and the resumed run's."""
    reference = tmp_path / folder_name
    [[straight]] = drive(tmp_path, [[{"argv": [*command, *folder_option, str(reference)]}]])
    assert straight["code"] == 0
    points = kill_points(straight["events"], reference)
    rng = random.Random(0)
    kills = [("event", {"kill_at": point}) for point in points] + [
        ("moment", {"kill_after": rng.uniform(0.2, 1.0) * seconds}) for _ in range(RANDOM_KILLS)]
    groups = []
    for number, (_, kill) in enumerate(kills):
        folder = str(tmp_path / f"killed-{number}")
        groups.append([{"argv": [*command, *folder_option, folder]} | kill,
                       {"argv": [*command, *resume, *folder_option, folder]}])
    outcomes = drive(tmp_path, groups)
    described = []
    for number, (how, kill) in enumerate(kills):
        at = straight["events"][kill["kill_at"]] if how == "event" else f"{kill['kill_after']:.2f} s"
        described.append((f"killed-{number} at {at}", *outcomes[number]))
    return straight, described


def ended(tmp_path: Path, kills, failures: list):
    """(description, folder) of each kill whose runs ended as they should: killed (or finished first, for a random
    moment after the end), then run again to the end, leaving no temporary file, lock or resume state behind. What
    went wrong otherwise goes to ``failures``."""
    for where, killed, resumed in kills:
        folder = tmp_path / where.split()[0]
        if killed["code"] not in (137, 0) or resumed["code"] != 0:
            failures.append((where, "exit codes", killed["code"], resumed["code"]))
            continue
        if leftovers(folder):
            failures.append((where, "left over", leftovers(folder)))
        yield where, folder


def files(folder: Path, named: str | None = None) -> dict[str, bytes]:
    """The folder's files, TensorBoard's event logs aside (they are named and stamped by time and host); with
    ``named``, the folder's path in them reads ``named``."""
    def read(path: Path) -> bytes:
        data = path.read_bytes()
        return data if named is None else data.replace(str(folder).encode(), named.encode())
    return {str(p.relative_to(folder)): read(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and "tfevents" not in p.name}


def leftovers(folder: Path) -> list[str]:
    """What a finished folder must not hold: temporary files and folders, a lock, resume state."""
    return [str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.name.startswith(".") or p.name.endswith(".partial") or p.name == LOCK_FILE or p.name == "resume"]


def without(record, *keys: str):
    """``record`` (JSON) without the entries named ``keys`` at any depth."""
    if isinstance(record, dict):
        return {k: without(v, *keys) for k, v in record.items() if k not in keys}
    if isinstance(record, list):
        return [without(v, *keys) for v in record]
    return record


def timeless(record):
    """``record`` (JSON) without what the clock decides: times, and training costs measured in time."""
    if isinstance(record, dict):
        return {k: timeless(v) for k, v in record.items() if not re.search(r"seconds|time|cost", k)}
    if isinstance(record, list):
        return [timeless(v) for v in record]
    return record


def examples(folder: Path) -> dict[str, list[dict]]:
    """Every attack's saved examples, compressed or not, by attack, in index order, times aside."""
    import gzip

    saved = {}
    for path in sorted(folder.rglob("examples_*.jsonl*")):
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        rows = sorted((timeless(json.loads(line)) for line in text.splitlines()), key=lambda row: row["index"])
        saved[str(path.relative_to(folder)).removesuffix(".gz")] = rows
    return saved


def same_examples(got: dict, expected: dict) -> bool:
    """The same examples; probabilities to float precision (a resumed attack scores its examples in other batches)."""
    if got.keys() != expected.keys():
        return False
    for name in expected:
        if len(got[name]) != len(expected[name]):
            return False
        for a, b in zip(got[name], expected[name]):
            if {k: v for k, v in a.items() if "probabilities" not in k} != \
                    {k: v for k, v in b.items() if "probabilities" not in k}:
                return False
            if any(a[k] != pytest.approx(b[k], abs=1e-5) for k in a if "probabilities" in k):
                return False
    return True


def test_a_training_killed_at_any_write_resumes_to_the_uninterrupted_run_bit_for_bit(tmp_path, tiny_model_dir):
    command = ["train", "--model", tiny_model_dir, *data_options(tmp_path), "--max-train-examples", "32",
               "--max-dev-examples", "16", "--max-test-examples", "16", "--method", "rift", "--ascc-steps", "1",
               "--epochs", "2", "--save-steps", "1", "--logging-steps", "1",
               "--retention-examples", "0"]
    straight, kills = killed_and_resumed(tmp_path, command, ["--resume"], ["--output-dir"], "straight", seconds=6)
    reference = files(tmp_path / "straight")
    expected_metrics = without(json.loads(reference.pop("metrics.json")), "train_seconds")
    reference.pop("README.md")  # the card states the training time
    expected_config = without(yaml.safe_load(reference.pop("rift_config.yaml")), "output_dir", "resume")
    assert len(kills) >= 30 + RANDOM_KILLS
    failures = []
    for where, folder in ended(tmp_path, kills, failures):
        got = files(folder)
        if without(json.loads(got.pop("metrics.json", b"{}")), "train_seconds") != expected_metrics:
            failures.append((where, "metrics.json"))
        if without(yaml.safe_load(got.pop("rift_config.yaml", b"{}")), "output_dir", "resume") != expected_config:
            failures.append((where, "rift_config.yaml"))
        if got.pop("README.md", None) is None:
            failures.append((where, "the model card is missing"))
        # the model, its config and tokenizer, the log, the inputs: byte for byte
        failures += [(where, name) for name in reference.keys() | got.keys() if got.get(name) != reference.get(name)]
    assert not failures, "\n".join(map(str, failures))


def check_results(tmp_path: Path, kills, results: str, reference: Path) -> list:
    """What differs, per kill, between the folder a killed and resumed run ended with and ``reference``: its exit
    codes, leftovers, results (times aside) and saved examples."""
    expected, expected_examples = timeless(json.loads((reference / results).read_text())), examples(reference)
    failures = []
    for where, folder in ended(tmp_path, kills, failures):
        got = timeless(json.loads((folder / results).read_text())) if (folder / results).is_file() else None
        if json.dumps(got, sort_keys=True).replace(folder.name, "F") != \
                json.dumps(expected, sort_keys=True).replace(reference.name, "F"):
            failures.append((where, results))
        if not same_examples(examples(folder), expected_examples):
            failures.append((where, "examples"))
    return failures


def test_an_attack_killed_at_any_write_resumes_to_the_uninterrupted_result(tmp_path, trained_tiny_dir):
    model = Path(shutil.copytree(trained_tiny_dir, tmp_path / "model"))  # the attacks update its card
    command = ["attack", "--model", str(model), *data_options(tmp_path), "--attacks", "pwws,genetic",
               "--num-examples", "6", "--population", "4", "--generations", "2", "--batch-size", "4"]
    _, kills = killed_and_resumed(tmp_path, command, [], ["--output-dir"], "straight", seconds=4)
    assert len(kills) >= 8 + RANDOM_KILLS
    failures = check_results(tmp_path, kills, "results.json", tmp_path / "straight")
    assert not failures, "\n".join(map(str, failures))
    assert json.loads((model / "robustness.json").read_text())["attacks"]
    assert (model / "README.md").is_file() and not leftovers(model)


@pytest.fixture
def tiny_bench(tmp_path, tiny_model_dir) -> list[str]:
    """A bench command over a tiny grid (one cell, one attack), without its output folder."""
    from test_bench import write_train_config

    config = write_train_config(tmp_path, 32, learning_rate=3e-3, logging_steps=1)
    return ["bench", "--task", "file", "--train-config", str(config), "--model", tiny_model_dir, "--methods",
            "standard", "--seeds", "0", "--attacks", "pwws", "--num-examples", "6", "--epochs", "2", "--batch-size",
            "16", "--max-length", "32", "--save-steps", "1", "--num-threads", "1", "--retention-examples", "0"]


def test_a_bench_killed_at_any_write_resumes_to_the_uninterrupted_result(tmp_path, tiny_bench):
    _, kills = killed_and_resumed(tmp_path, tiny_bench, [], ["--output-dir"], "straight", seconds=6)
    assert len(kills) >= 30 + RANDOM_KILLS
    failures = check_results(tmp_path, kills, "results.json", tmp_path / "straight")
    assert not failures, "\n".join(map(str, failures))


def test_a_record_killed_at_any_write_ends_as_an_uninterrupted_one(tmp_path, tiny_bench):
    [[bench]] = drive(tmp_path, [[{"argv": [*tiny_bench, "--output-dir", str(tmp_path / "bench")]}]])
    assert bench["code"] == 0
    _, kills = killed_and_resumed(tmp_path, ["record", str(tmp_path / "bench")], [], [], "straight", seconds=1)
    reference = files(tmp_path / "straight", named="F")
    failures = []
    for where, folder in ended(tmp_path, kills, failures):
        got = files(folder, named="F")
        failures += [(where, name) for name in reference.keys() | got.keys() if got.get(name) != reference.get(name)]
    assert not failures, "\n".join(map(str, failures))
