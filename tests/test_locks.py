"""A folder is written by one process at a time: a second writer (train, attack, bench, record) stops with one line
naming the holder, and what the folder holds is left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_distributed import BIN, data_options

from rift.cli import main
from rift.errors import RiftError
from rift.files import folder_lock
from rift.run_folder import LOCK_FILE

HOLDER = """
import sys, time
from contextlib import ExitStack
from rift.files import folder_lock
with ExitStack() as stack:
    for folder in sys.argv[2:]:
        stack.enter_context(folder_lock(folder, "a test's holder"))
    open(sys.argv[1], "w").close()
    time.sleep(120)
"""


@pytest.fixture
def hold(tmp_path):
    """Starts a process that holds the locks of the folders given, until the test ends (or kills it)."""
    holders = []

    def start(*folders: Path) -> subprocess.Popen:
        ready = tmp_path / f"holder-{len(holders)}-ready"
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ready), *map(str, folders)])
        holders.append(holder)
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.05)
        return holder

    yield start
    for holder in holders:
        holder.kill()
        holder.wait()


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


def test_a_folder_has_one_writer_and_a_killed_one_leaves_no_lock(tmp_path, hold):
    folder = tmp_path / "run"
    holder = hold(folder)
    with pytest.raises(RiftError, match=rf"^{folder} is being written by another rift process \(a test's holder, "
                                        rf"pid {holder.pid} on .*, since .*\); wait for it to end or choose another "
                                        "folder$"):
        with folder_lock(folder, "rift train"):
            pass
    holder.send_signal(signal.SIGKILL)  # the kernel drops a killed process's lock
    holder.wait()
    with folder_lock(folder, "rift train"):
        with folder_lock(folder, "rift train"):  # nested in the same process: free
            assert (folder / LOCK_FILE).read_text().startswith(f"rift train, pid {os.getpid()}")
    assert not (folder / LOCK_FILE).exists() and folder.is_dir()
    fresh = tmp_path / "never-written"
    with folder_lock(fresh, "rift attack"):
        assert fresh.is_dir()
    assert not fresh.exists()  # the lock made it and nothing else filled it


def test_train_attack_bench_and_record_refuse_a_folder_another_process_writes(tmp_path, hold, trained_tiny_dir,
                                                                             tiny_model_dir, capsys):
    data = data_options(tmp_path)
    run, attacked, bench, record = (tmp_path / name for name in ("run", "attacked", "bench", "record"))
    cell = bench / "cells" / "file-standard-s0"
    source = tmp_path / "source"  # a bench folder to record: one finished cell
    (source / "cells" / "file-standard-s0").mkdir(parents=True)
    (source / "cells" / "file-standard-s0" / "metrics.json").write_text("{}")
    for folder in (run, attacked, cell, record):
        folder.mkdir(parents=True)
        (folder / "kept.txt").write_text("what was there")
    before = {folder: snapshot(folder) for folder in (run, attacked, cell, record)}
    holder = hold(run, attacked, cell, record)
    commands = {
        run: ["train", "--model", tiny_model_dir, *data, "--epochs", "1", "--output-dir", str(run)],
        attacked: ["attack", "--model", trained_tiny_dir, *data, "--num-examples", "4", "--output-dir",
                   str(attacked)],
        cell: ["bench", "--task", "file", "--model", tiny_model_dir, "--methods", "standard", "--attacks", "pwws",
               "--num-examples", "4", "--epochs", "1", "--output-dir", str(bench)],
        record: ["record", str(source), str(record)],
    }
    for folder, command in commands.items():
        capsys.readouterr()
        assert main(command) == 2, command[0]
        errors = capsys.readouterr().err.strip().splitlines()
        assert errors == [f"rift: error: {folder} is being written by another rift process (a test's holder, pid "
                          f"{holder.pid}" + errors[0].split(str(holder.pid), 1)[1]], (command[0], errors)
        assert snapshot(folder) == before[folder], command[0]


def test_two_trainings_started_together_on_one_folder_end_with_one_run_and_one_clean_error(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    command = [str(BIN / "rift"), "train", "--model", tiny_model_dir, *data_options(tmp_path), "--epochs", "2",
               "--logging-steps", "1", "--retention-examples", "0", "--output-dir", str(run)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outcomes = sorted((process.wait(timeout=300), process.stderr.read()) for process in processes)
    (ok, _), (refused, error) = outcomes
    assert (ok, refused) == (0, 2), outcomes
    [line] = [line for line in error.splitlines() if line.startswith("rift: error:")]
    assert "is being written by another rift process" in line or "already holds a rift run" in line
    # the folder holds the one run: its log counts each step once
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()
             if "train/loss" in line]
    assert steps == sorted(set(steps)) and json.loads((run / "metrics.json").read_text())["test_accuracy"] >= 0
    assert not (run / LOCK_FILE).exists()


def test_an_attack_updates_the_model_card_only_when_no_other_process_writes_the_model(tmp_path, hold, trained_tiny_dir,
                                                                                       capsys):
    model = Path(shutil.copytree(trained_tiny_dir, tmp_path / "model"))
    before = snapshot(model)
    holder = hold(model)  # another attack updating the card, or a training writing the folder
    assert main(["attack", "--model", str(model), *data_options(tmp_path), "--num-examples", "4", "--output-dir",
                 str(tmp_path / "attacked")]) == 0  # the attack's own results are written whatever happens
    assert (tmp_path / "attacked" / "results.json").is_file()
    assert f"the model card of {model} was not updated: {model} is being written by another rift process" in \
        capsys.readouterr().err
    assert snapshot(model) == before
    holder.kill()
    holder.wait()
    assert main(["attack", "--model", str(model), *data_options(tmp_path), "--num-examples", "4", "--output-dir",
                 str(tmp_path / "again")]) == 0
    assert json.loads((model / "robustness.json").read_text())["attacks"]
