"""WordNet 3.0 synonyms, read straight from the database files (format: wndb(5)); no NLTK needed."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rift.errors import RiftError
from rift.inputs import note_read
from rift.substitutions.base import SubstitutionSource, is_word, lookup_key

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")  # where Debian's wordnet-base puts the database

_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}  # also the order synsets are listed in

# Suffix detachment rules of WordNet's own morphy (morph.c), per part of speech.
_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
          ("men", "man"), ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
          ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}

_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # syntactic markers on adjectives in data.adj, e.g. "galore(ip)"


def default_wordnet_dir() -> Path:
    """``$RIFT_WORDNET_DIR`` if set, else ``/usr/share/wordnet``."""
    return Path(os.environ.get("RIFT_WORDNET_DIR") or DEFAULT_WORDNET_DIR)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RiftError(f"cannot read WordNet file {path}: {e.strerror}") from e


@dataclass(frozen=True)
class _WordNet:
    index: dict[str, dict[str, tuple[int, ...]]]  # pos -> lemma -> byte offsets of its synsets in data.<pos>
    exceptions: dict[str, dict[str, tuple[str, ...]]]  # pos -> irregular form -> base forms (*.exc)
    data: dict[str, bytes]  # pos -> the whole data.<pos> file; synsets are parsed on demand

    def base_forms(self, word: str, pos: str) -> list[str]:
        """Lemmas of ``word`` in ``pos`` (the word itself included), as WordNet's morphy finds them."""
        if word in self.exceptions[pos]:  # an irregular form is not also run through the rules
            candidates = [word, *self.exceptions[pos][word]]
        elif len(word) <= 2 or (pos == "n" and word.endswith("ss")):  # morph.c leaves these alone
            candidates = [word]
        else:
            candidates = [word] + [word[: -len(old)] + new for old, new in _RULES[pos] if word.endswith(old)]
        return [c for c in dict.fromkeys(candidates) if c in self.index[pos]]

    def synset_lemmas(self, pos: str, offset: int) -> list[str]:
        """The lemmas of the synset at ``offset`` of data.<pos>, in the synset's order."""
        data = self.data[pos]
        fields = data[offset : data.index(b"\n", offset)].decode("ascii").split()
        count = int(fields[3], 16)  # w_cnt is two hex digits, followed by (word, lex_id) pairs
        return [_ADJ_MARKER.sub("", w) for w in fields[4 : 4 + 2 * count : 2]]


def _parse_index(text: str) -> dict[str, tuple[int, ...]]:
    index = {}
    for line in text.splitlines():
        if line.startswith(" "):  # the licence header
            continue
        fields = line.split()
        synset_count = int(fields[2])
        index[fields[0]] = tuple(int(f) for f in fields[-synset_count:])  # offsets are the last fields
    return index


def _parse_exceptions(text: str) -> dict[str, tuple[str, ...]]:
    return {fields[0]: tuple(fields[1:]) for fields in map(str.split, text.splitlines()) if fields}


@functools.cache  # the index takes a noticeable fraction of a second: load it once per folder
def _load(directory: Path) -> _WordNet:
    if not directory.is_dir():
        raise RiftError(
            f"WordNet folder {directory} not found: install WordNet 3.0 with `apt-get install wordnet-base`"
            " or point RIFT_WORDNET_DIR at a folder holding its index.*, data.* and *.exc files"
        )
    files = _POS_FILES.items()
    return _WordNet(
        index={p: _parse_index(_read(directory / f"index.{f}").decode("ascii")) for p, f in files},
        exceptions={p: _parse_exceptions(_read(directory / f"{f}.exc").decode("ascii")) for p, f in files},
        data={p: _read(directory / f"data.{f}") for p, f in files},
    )


def _check_pos(pos: str | None) -> str | None:
    if pos is not None and pos not in _POS_FILES:
        raise RiftError(f"unknown WordNet part of speech {pos!r}: use one of {', '.join(_POS_FILES)}")
    return pos


class WordNetSynonyms(SubstitutionSource):
    """Substitutes from WordNet 3.0: the lemmas of every synset of the word (the synonym source of PWWS).

    - Part of speech: the original uses synsets of the word's tagged part of speech where a tagger is
      available; no tagger is available offline, so all synsets of every part of speech are used
      (nouns, verbs, adjectives, adverbs, in that order; within each, WordNet's sense order). A caller
      that knows the part of speech passes ``pos`` ("n", "v", "a", "r") here or to ``synonyms``.
    - Inflected words: base forms are found with WordNet's exception lists (*.exc) and morphy's suffix
      rules ("dogs" -> "dog", "went" -> "go"). Substitutes are not re-inflected: they are lemmas as
      WordNet gives them, as in the original PWWS use of WordNet. The word's own base forms are not
      offered ("dogs" does not get "dog"): that changes the inflection, not the word.
    - Only single alphabetic words are kept: multi-word lemmas ("motor_vehicle") and hyphenated ones
      ("full-face") are dropped, since the tokenizer would split them into several words.
    - Substitutes are lower-cased (WordNet capitalises proper nouns); ``FilteredSource`` restores the
      original word's casing.
    """

    name = "wordnet"

    def __init__(self, wordnet_dir: Path | str | None = None, *, pos: str | None = None) -> None:
        self.directory = Path(wordnet_dir or default_wordnet_dir()).resolve()
        self.pos = _check_pos(pos)
        self._wordnet = _load(self.directory)
        note_read(self.directory)

    def synonyms(self, word: str, pos: str | None = None) -> list[str]:
        """Synonyms of ``word``, from synsets of part of speech ``pos`` only if given, else of all."""
        key = lookup_key(word)
        own, lemmas = {key}, []
        for p in [_check_pos(pos)] if pos else _POS_FILES:
            bases = self._wordnet.base_forms(key, p)
            own.update(bases)
            for offset in (o for base in bases for o in self._wordnet.index[p][base]):
                lemmas.extend(self._wordnet.synset_lemmas(p, offset))
        return [s for s in dict.fromkeys(lemma.lower() for lemma in lemmas) if s not in own and is_word(s)]

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return self.synonyms(words[position], self.pos)
