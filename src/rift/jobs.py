"""Jobs side by side (``rift bench --jobs N``): each in a spawned process of its own, so that each has its own torch
threads, Accelerate state and GPU, with its output appended to a log file of its own."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import transformers

from rift import registry
from rift.errors import RiftError

MESSAGE_CHARS = 500  # a job's answer is one line, far below a pipe's buffer, so that sending it never blocks
PR_SET_PDEATHSIG = 1  # Linux prctl: the signal a process gets when its parent ends


def status_line(number: int, total: int, name: str, ran: bool, seconds: float) -> str:
    return f"[{number}/{total}] {name}: " + (f"done in {seconds:.1f} s" if ran else "skipped (finished before)")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and schedulers set), else all of them."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them."""
    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",")[:count] if visible else [str(index) for index in range(count)]


@dataclass(frozen=True)
class ProcessSetup:
    """What a job's process takes over from the bench's: the components registered (``rift.registry.register``
    calls outside the main module are not repeated by a spawned process), how verbose transformers is, and the
    bench's process id, with whose end the job's process ends."""

    components: dict[str, dict[str, str]]
    verbosity: int
    progress_bars: bool
    parent: int

    @classmethod
    def of_this_process(cls) -> ProcessSetup:
        return cls(registry.registered(), transformers.logging.get_verbosity(),
                   transformers.utils.logging.is_progress_bar_enabled(), os.getpid())

    def apply(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux only; elsewhere an orphan runs to its end
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self.parent:  # the bench ended before the line above took effect
            os._exit(1)
        for kind, entries in self.components.items():
            for name, target in entries.items():
                registry.register(kind, name, target)
        transformers.logging.set_verbosity(self.verbosity)
        (transformers.logging.enable_progress_bar if self.progress_bars else transformers.logging.disable_progress_bar)()


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """``os.environ`` with ``values`` set, restored after (a spawned process inherits the environment at its start)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_side_by_side(run: Callable, jobs: list[tuple[int, object]], total: int, at_once: int, threads: int,
                     logs: Path) -> None:
    """``run(job, log=...)`` (picklable, returning whether it did any work) for every (number, job) of ``jobs``,
    where a job has a ``name``: ``at_once`` at a time, each in a process of its own with ``threads`` threads and,
    where there are GPUs, one of them (dealt out in turn), its output appended to ``logs/NAME.log``. After a job
    fails no other starts; those running finish, so that nothing done is lost, and the failures are raised together
    as one line. If the bench stops otherwise (an error, Ctrl-C), the jobs running are stopped with it."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RiftError("--jobs: under a distributed launch every process would run the same cells; use --jobs 1")
    logs.mkdir(parents=True, exist_ok=True)
    gpus, setup, context = visible_gpus(), ProcessSetup.of_this_process(), multiprocessing.get_context("spawn")
    waiting, running, failures, slots = list(jobs), {}, [], list(range(at_once))
    try:
        while running or (waiting and not failures):
            while waiting and slots and not failures:
                (number, job), slot = waiting.pop(0), slots.pop(0)
                log, (receive, send) = logs / f"{job.name}.log", context.Pipe(duplex=False)
                process = context.Process(target=run_job, args=(run, job, str(log), setup, send), name=job.name)
                with environment({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                                  "TOKENIZERS_PARALLELISM": "false"}
                                 | ({"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]} if gpus else {})):
                    process.start()
                send.close()  # the job's process holds the sending end now: its end closes the pipe
                running[process.sentinel] = (process, receive, number, job, slot, time.perf_counter())
                print(f"[{number}/{total}] {job.name}: started, output in {log}", flush=True)
            for sentinel in multiprocessing.connection.wait(list(running)):
                process, receive, number, job, slot, started = running.pop(sentinel)
                process.join()
                try:
                    status, message = receive.recv()
                except EOFError:  # killed before it could answer
                    status, message = "error", f"its process ended without an answer (exit code {process.exitcode})"
                receive.close()
                slots.append(slot)
                if status == "error":
                    failures.append(f"{job.name}: {message} (output in {logs / job.name}.log)")
                    print(f"[{number}/{total}] {job.name}: failed", flush=True)
                else:
                    print(status_line(number, total, job.name, status == "done", time.perf_counter() - started),
                          flush=True)
    finally:
        for process, *_ in running.values():  # the bench stopped with jobs running: they resume next time
            process.terminate()
            process.join()
    if failures:
        raise RiftError(f"{len(failures)} of the cells failed ({len(waiting)} not started): " + "; ".join(failures))


def run_job(run: Callable, job, log: str, setup: ProcessSetup, send) -> None:
    """A job's process: its output (file descriptors 1 and 2, so that progress bars and libraries' output go there
    too) appended to ``log``; sends back ("done" | "skipped" | "error", one line)."""
    try:
        setup.apply()
        with open(log, "a", encoding="utf-8") as output:
            os.dup2(output.fileno(), 1)
            os.dup2(output.fileno(), 2)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
        answer = ("done" if run(job, log=lambda message: print(message, file=sys.stderr)) else "skipped", "")
    except RiftError as error:
        print(f"rift: error: {error}", file=sys.stderr)
        answer = ("error", str(error))
    except BaseException as error:  # a bug: its traceback goes to the job's log, one line to the bench
        traceback.print_exc()
        answer = ("error", f"{type(error).__name__}: {error}")
    send.send((answer[0], " ".join(answer[1].split())[:MESSAGE_CHARS]))
