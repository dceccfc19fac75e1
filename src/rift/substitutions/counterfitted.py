"""Neighbours in counter-fitted word vectors (Mrkšić et al. 2016): the attack surface of RIFT."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

from rift.errors import RiftError
from rift.inputs import note_read
from rift.substitutions.base import SubstitutionSource, is_word, lookup_key


@functools.cache  # one parse per file per process: attacks and training build sources repeatedly
def _load_table(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RiftError(f"cannot read synonym table {path}: {e.strerror}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RiftError(f"synonym table {path} is not valid UTF-8 JSON: {e}") from e
    if not isinstance(raw, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in raw.values()
    ):
        raise RiftError(f"synonym table {path} must be a JSON object mapping each word to a list of words")
    # Enforce the source contract once here instead of on every lookup.
    return {
        word: tuple(dict.fromkeys(n for n in neighbours if n != word and is_word(n)))
        for word, neighbours in raw.items()
    }


class CounterFittedSynonyms(SubstitutionSource):
    """Substitutes from a JSON table ``word -> [neighbours]`` (lower-case keys), in the table's order.

    Lookup is by the lower-cased word; substitutes are returned lower-case (``FilteredSource`` restores
    the original casing). The table is loaded once per path and shared by all instances.
    """

    name = "counterfitted"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).resolve()
        note_read(self.path)
        self._table = _load_table(self.path)

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return list(self._table.get(lookup_key(words[position]), ()))
