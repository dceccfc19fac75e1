"""Files rift writes are whole or absent: a write that fails on the way leaves the previous content."""

from __future__ import annotations

import os

import pytest

from rift.files import write_atomic


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "metrics.json"
    write_atomic(path, '{"a": 1}')
    write_atomic(path, b'{"a": 2}')
    assert path.read_text() == '{"a": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind


def test_a_write_that_fails_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_atomic(path, "complete")

    def disk_full(_descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_atomic(path, "x" * 1000)
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
