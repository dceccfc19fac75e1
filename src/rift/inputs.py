"""What a run read, so that it can tell when its inputs changed.

A run, an attack and a bench cell record a fingerprint (SHA-256 of the bytes; of a folder, of its files' names and
bytes in order) of every data file, synonym table and model weight file it read (``INPUTS_FILE``). Resuming a run,
adding attacks to an attack folder and a bench skipping a finished cell check that those files still hold the
same bytes: an edited file at the same path would otherwise mix results of two data sets under one name. A
mismatch is a one-line error unless ``--allow-changed-data``, and the recorded file then says what changed.

Readers call ``note_read`` with each input they open; ``recording_reads`` collects the notes of a block.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rift.errors import RiftError
from rift.files import write_atomic
from rift.run_folder import INPUTS_FILE

_RECORDERS: list[set[Path]] = []
_CACHE: dict[tuple[Path, int, int], str] = {}  # (path, size, mtime) -> fingerprint: a file is hashed once


def note_read(path: str | Path) -> None:
    """Say that ``path`` (a file, or a folder read whole) is an input of what is being recorded."""
    for read in _RECORDERS:
        read.add(Path(path).resolve())


@contextmanager
def recording_reads() -> Iterator[set[Path]]:
    """The inputs noted while the block runs."""
    read: set[Path] = set()
    _RECORDERS.append(read)
    try:
        yield read
    finally:
        _RECORDERS.remove(read)


def fingerprint(path: Path) -> str:
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode() + b"\0" + fingerprint(child).encode())
        return digest.hexdigest()
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        _CACHE[key] = digest.hexdigest()
    return _CACHE[key]


def fingerprints(paths: Iterable[Path]) -> dict[str, str]:
    return {str(path): fingerprint(path) for path in sorted(paths) if path.exists()}


def changed_inputs(recorded: dict[str, str], current: dict[str, str] | None = None) -> list[str]:
    """The recorded inputs whose bytes differ now: read again with other bytes, or, not read this time (another
    attack's synonym table; a data folder moved elsewhere), still at their recorded path with other bytes. Bytes
    read now under another path are the same input (a moved data folder); a file gone is not checked."""
    current = current or {}
    now = set(current.values())

    def changed(path: str, value: str) -> bool:
        if value in now:
            return False
        if path in current:
            return True
        return Path(path).exists() and fingerprint(Path(path)) != value

    return [path for path, value in recorded.items() if changed(path, value)]


def check_inputs(folder: Path, current: dict[str, str] | None, allow_changed: bool, what: str, log=print,
                 write: bool = True) -> None:
    """Refuse to continue ``what`` in ``folder`` if an input it recorded has changed, unless ``allow_changed``;
    then the change is kept in the folder's record (by the process that ``write``s: every process of a
    distributed launch checks, so that all stop with the same error rather than wait for one that did)."""
    path = folder / INPUTS_FILE
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        recorded = saved["files"]
    except (ValueError, KeyError, TypeError):
        raise RiftError(f"{path} is damaged; it records what {what} read, which cannot be checked now") from None
    changed = changed_inputs(recorded, current)
    if not changed:
        return
    if not allow_changed:
        raise RiftError(f"cannot continue {what} in {folder}: {', '.join(changed)} changed since it was read there "
                        "(its bytes differ); pass --allow-changed-data to continue with the new bytes (recorded)")
    if not write:
        return
    log(f"{what} in {folder} continues with changed inputs: {', '.join(changed)} (--allow-changed-data)")
    saved["changed_data"] = sorted(set(saved.get("changed_data", [])) | set(changed))
    write_atomic(path, json.dumps(saved, indent=2))


def record_inputs(folder: Path, current: dict[str, str]) -> None:
    """Keep what ``folder``'s run read (with the changes accepted before, if any)."""
    path = folder / INPUTS_FILE
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    files = {**saved.get("files", {}), **current}
    write_atomic(path, json.dumps({"files": files, **({"changed_data": saved["changed_data"]}
                                                      if saved.get("changed_data") else {})}, indent=2))


def weights_read_before(model: str | Path, folder: Path) -> bool:
    """Whether the weights in the model folder ``model`` are, byte for byte, weights that ``folder``'s run read,
    at whatever path it read them (a bench cell recorded and continued elsewhere): the same model moved."""
    path = folder / INPUTS_FILE
    weights = sorted(Path(model).glob("*.safetensors")) if Path(model).is_dir() else []
    if not weights or not path.is_file():
        return False
    try:
        read = set(json.loads(path.read_text(encoding="utf-8"))["files"].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return all(fingerprint(weight) in read for weight in weights)

