"""Files that are whole or absent: every file rift writes goes to a temporary name beside it, is flushed to disk and
renamed over the target, so that a run killed while writing leaves the previous version (or nothing), never half a
file that later reads as a finished result."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """``path`` holds ``data`` (text is written as UTF-8), or keeps what it held if anything fails on the way."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
