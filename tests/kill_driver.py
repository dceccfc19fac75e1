"""Runs rift commands and kills them at injected write points or at random moments, for tests/test_kills.py.

    python tests/kill_driver.py PLAN_FILE OUTCOMES_FILE

PLAN_FILE is a JSON list of groups of runs, each run ``{"argv": [...], "kill_at": N}`` or
``{"argv": [...], "kill_after": SECONDS}`` or ``{"argv": [...]}`` (run to the end). A group's runs follow one another
(a kill and the run that continues after it); groups run side by side, one per CPU core. Each run is a child
process forked from this one, which has imported rift but run nothing, so that no run pays for the imports.
OUTCOMES_FILE gets, per group and run, the exit code and the write events the run made before it ended.

Every write a command makes is an event, in the order it happens:
- ``written``: an atomic write's temporary file is complete, before its rename (a kill leaves the temporary file);
- ``renamed``: a rename has just been made (a kill lands between two renames, such as a model's files moved into place);
- ``write``: a file opened for writing (or appending) gets its first bytes (a kill leaves half of them);
- ``saved``: safetensors or torch writes a file (a kill leaves half of it);
- ``copied``: a file is copied (a kill leaves half of it);
- ``removed``: a folder is removed (a kill leaves it half removed).

``kill_at`` N: the child dies at event N (from 0) with ``os._exit``, as SIGKILL kills (no cleanup, no ``finally``),
after leaving what a kill at that event leaves. ``kill_after``: the parent sends SIGKILL after that many seconds,
wherever the child is. A killed child's exit code is 137.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import signal
import sys
import time

KILLED = 137

kill_at = -1  # set in each child
events: list[tuple[str, str]] = []
real_open, real_replace, real_rename, real_copyfile, real_rmtree = (
    builtins.open, os.replace, os.rename, shutil.copyfile, shutil.rmtree)


def event(kind: str, path, partial=None) -> None:
    """Counts the event; at the chosen one, leaves what a kill there leaves (``partial()``) and dies."""
    if len(events) == kill_at:
        if partial is not None:
            partial()
        os._exit(KILLED)
    events.append((kind, os.fspath(path)))


def write_half(path, data: bytes) -> None:
    with real_open(path, "wb") as stream:
        stream.write(data[: len(data) // 2])


class Stream:
    """A file opened for writing: its first write is an event (a kill there leaves half of what it wrote)."""

    def __init__(self, stream, path):
        self._stream, self._path, self._first = stream, path, True

    def write(self, data):
        if self._first:
            self._first = False

            def half():
                self._stream.write(data[: len(data) // 2])
                self._stream.flush()
            event("write", self._path, half)
        return self._stream.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._stream.__exit__(*exc)

    def __iter__(self):
        return iter(self._stream)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def open_(file, mode="r", *args, **kwargs):
    stream = real_open(file, mode, *args, **kwargs)
    if isinstance(file, int) or not any(flag in mode for flag in "wax+"):
        return stream
    return Stream(stream, file)


def replace(source, target, *args, **kwargs):
    event("written", target)
    real_replace(source, target, *args, **kwargs)
    event("renamed", target)


def rename(source, target, *args, **kwargs):
    event("written", target)
    real_rename(source, target, *args, **kwargs)
    event("renamed", target)


def copyfile(source, target, *args, **kwargs):
    event("copied", target, lambda: write_half(target, real_open(source, "rb").read()))
    return real_copyfile(source, target, *args, **kwargs)


def rmtree(path, *args, **kwargs):
    def half():
        files = sorted(p for p in __import__("pathlib").Path(path).rglob("*") if p.is_file())
        for file in files[: len(files) // 2]:
            file.unlink()
    if os.path.exists(path):
        event("removed", path, half)
    return real_rmtree(path, *args, **kwargs)


def saving(save, serialise):
    """``save(obj, path, ...)`` as an event whose kill leaves half of the file ``serialise`` would write."""
    def saved(obj, path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)):
            event("saved", path, lambda: write_half(path, serialise(obj, *args, **kwargs)))
        return save(obj, path, *args, **kwargs)
    return saved


def torch_bytes(obj, *args, **kwargs) -> bytes:
    buffer = io.BytesIO()
    real_torch_save(obj, buffer)
    return buffer.getvalue()


builtins.open, os.replace, os.rename, shutil.copyfile, shutil.rmtree = open_, replace, rename, copyfile, rmtree
import safetensors.torch  # noqa: E402  (patched before transformers binds its names)
import torch  # noqa: E402

real_torch_save = torch.save
torch.save = saving(torch.save, torch_bytes)
safetensors.torch.save_file = saving(
    safetensors.torch.save_file, lambda tensors, metadata=None: safetensors.torch.save(tensors, metadata))
import transformers.modeling_utils  # noqa: E402

transformers.modeling_utils.safe_save_file = safetensors.torch.save_file

from rift.cli import main  # noqa: E402



def run(entry: dict, log) -> dict:
    """One run in a child process: its exit code and events."""
    global kill_at
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        kill_at = entry.get("kill_at", -1)
        events.clear()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            code = main(entry["argv"])
        except SystemExit as stopped:
            code = stopped.code
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        with os.fdopen(writer, "w") as stream:
            json.dump(events, stream)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    os.close(writer)
    if "kill_after" in entry:
        time.sleep(entry["kill_after"])
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    with os.fdopen(reader) as stream:
        written = stream.read()
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return {"code": KILLED if code == -signal.SIGKILL else code, "events": json.loads(written) if written else None}


def run_groups(groups: list[list[dict]], log) -> list[list[dict]]:
    """Each group's runs one after the other (they share a folder), the groups side by side, one per CPU core."""
    outcomes, workers = [None] * len(groups), {}
    pending = list(enumerate(groups))
    while pending or workers:
        while pending and len(workers) < (os.cpu_count() or 1):
            number, group = pending.pop(0)
            reader, writer = os.pipe()
            worker = os.fork()
            if worker == 0:
                os.close(reader)
                torch.set_num_threads(1)  # the workers share the cores
                with os.fdopen(writer, "w") as stream:
                    json.dump([run(entry, log) for entry in group], stream)
                os._exit(0)
            os.close(writer)
            workers[worker] = (number, reader)
        worker, _ = os.wait()
        number, reader = workers.pop(worker)
        with os.fdopen(reader) as stream:
            outcomes[number] = json.loads(stream.read())
    return outcomes


if __name__ == "__main__":
    plan_file, outcomes_file = sys.argv[1:3]
    with real_open(outcomes_file + ".log", "w") as log:
        outcomes = run_groups(json.loads(real_open(plan_file).read()), log)
    with real_open(outcomes_file, "w") as stream:
        json.dump(outcomes, stream)
