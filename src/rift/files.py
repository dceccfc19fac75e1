"""Files that are whole or absent, and folders that one process writes at a time.

Every file rift writes goes to a temporary name beside it, is flushed to disk and renamed over the target, so that a
run killed while writing leaves the previous version (or nothing), never half a file that later reads as a finished
result. A folder that a run, an attack, a bench cell or a record writes is locked while it does: a second process
that would write it stops with one line naming the holder."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rift.errors import RiftError
from rift.run_folder import LOCK_FILE


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """``path`` holds ``data`` (text is written as UTF-8), or keeps what it held if anything fails on the way."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{writer_tag()}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.filename is None:  # fsync's and write's errors name no file: the one it was for
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def copy_atomic(source: str | Path, target: str | Path) -> None:
    """``source`` copied to ``target`` whole (``write_atomic``), with its times and permissions."""
    write_atomic(target, Path(source).read_bytes())
    shutil.copystat(source, target)


_HELD: dict[Path, int] = {}  # the folders this process holds, with how many holds are nested in each


def is_main_process() -> bool:
    """Whether this is the process that writes a run's folders: the only one, or rank 0 of a distributed launch."""
    return os.environ.get("RANK", "0") == "0"


@contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """While the block runs, ``folder`` (created if missing) is written by this process only: another process that
    asks for it gets a one-line ``RiftError`` naming this one (``what``, pid, host, start time). The kernel holds the
    lock (``flock``), so a killed process leaves none behind; a hold nested in the same process (a bench cell's
    training inside the cell) is free. The folders that the lock created (with their parents) and nothing else
    filled are removed again; what killed writers left half-way is removed (``remove_temporaries``)."""
    folder = Path(folder).absolute()
    if folder in _HELD:
        _HELD[folder] += 1
        try:
            yield
        finally:
            _HELD[folder] -= 1
        return
    created = [path for path in (folder, *folder.parents) if not path.exists()]  # the deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RiftError(f"{folder}: cannot create the folder ({error.strerror or error})") from None
    path = folder / LOCK_FILE
    handle = _acquire(path, folder)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"{what}, pid {os.getpid()} on {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        _HELD[folder] = 1
        remove_temporaries(folder)
        yield
    finally:
        _HELD.pop(folder, None)
        path.unlink(missing_ok=True)  # before the lock goes: a waiting process then finds no stale file
        os.close(handle)
        for path in created:  # what the lock created and nothing else filled goes again
            if any(path.iterdir()):
                break
            path.rmdir()


TEMPORARY = ".*.partial"  # write_atomic's temporary files and a model's staging folder


def writer_tag() -> str:
    """What names this process in its temporary files: host and pid, so that another process can tell whether the
    writer of one is dead (a killed process leaves its temporaries behind)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_temporaries(folder: Path) -> None:
    """Removes, in ``folder`` and below, what writers killed half-way left: their temporary files and staging
    folders (named with their host and pid, removed once that process is gone), and the lock files no process holds
    any more."""
    marker = f".{socket.gethostname()}-"
    for path in sorted(folder.rglob(TEMPORARY), reverse=True):
        at = path.name.rfind(marker)
        pid = path.name[at + len(marker):].split(".", 1)[0] if at >= 0 else ""
        if not pid.isdigit() or _alive(int(pid)):  # another host's, or its writer still runs
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for path in folder.rglob(f"*/{LOCK_FILE}"):
        handle = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held: its folder is being written
            pass
        else:  # a killed holder's: gone, as its holder would have removed it
            path.unlink(missing_ok=True)
        finally:
            os.close(handle)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _acquire(path: Path, folder: Path) -> int:
    """An open handle of ``path`` that holds its lock. The holder removes the file when it is done, so the lock
    counts only if the file locked is still the one at ``path``."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 400).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RiftError(f"{folder} is being written by another rift process ({holder}); wait for it to end or "
                            "choose another folder") from None
        try:
            if os.fstat(handle).st_ino == os.stat(path).st_ino:
                return handle
        except FileNotFoundError:  # removed by the holder that just finished: lock the new file
            pass
        os.close(handle)
