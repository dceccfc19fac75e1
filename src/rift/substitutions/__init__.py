"""Word-substitution sources: which words may replace which (the attack surface of the threat model).

Sources see words already split by the tokenizer (``\\w+(?:['’]\\w+)*|[^\\w\\s]``) and return single
words. ``build_substitution_source`` gives the usual configuration: a base source wrapped in
``FilteredSource`` (no substitutes for stop words, punctuation or numbers; original casing kept).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rift.errors import RiftError
from rift.inputs import note_read
from rift.substitutions.base import SOURCE_CHOICES, SOURCE_NAMES, SubstitutionSource, is_word, lookup_key, match_case
from rift.substitutions.counterfitted import CounterFittedSynonyms
from rift.substitutions.wordnet import WordNetSynonyms

__all__ = [
    "SOURCE_CHOICES",
    "SOURCE_NAMES",
    "UnionSource",
    "CounterFittedSynonyms",
    "FilteredSource",
    "SubstitutionSource",
    "WordNetSynonyms",
    "build_substitution_source",
    "coverage",
    "is_word",
    "load_stopwords",
    "substitute_slots",
]

class FilteredSource(SubstitutionSource):
    """Another source with the usual restrictions applied.

    - Only alphabetic words (internal apostrophes allowed, as in "don't") get substitutes; punctuation,
      numbers and anything with a digit or '_' get none.
    - ``stopwords``: words whose lower-cased form is in the set get none.
    - ``keep_case``: the original word's casing is applied to each substitute.
    - ``vocabulary``: keep only substitutes (as cased) for which it returns True, e.g. words a model knows.
    - ``max_substitutes``: keep the first K of what is left.
    """

    def __init__(
        self,
        base: SubstitutionSource,
        *,
        stopwords: set[str] | frozenset[str] | None = None,
        keep_case: bool = True,
        max_substitutes: int | None = None,
        vocabulary: Callable[[str], bool] | None = None,
    ) -> None:
        if max_substitutes is not None and max_substitutes < 0:
            raise RiftError(f"max_substitutes must be 0 or more, got {max_substitutes}")
        self.base = base
        self.name = base.name
        self.stopwords = frozenset(stopwords or ())
        self.keep_case = keep_case
        self.max_substitutes = max_substitutes
        self.vocabulary = vocabulary

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        word = words[position]
        if not is_word(word) or lookup_key(word) in self.stopwords:
            return []
        found = self.base.substitutes(words, position)
        if self.keep_case:
            found = [match_case(word, s) for s in found]
        if self.vocabulary is not None:
            found = [s for s in found if self.vocabulary(s)]
        return found[: self.max_substitutes]


class UnionSource(SubstitutionSource):
    """Every substitute of each member, in the members' order, each once (compared as looked up, so "Good" and
    "good" are one); ``members`` are kept, so that an adversary can say how much of each it covers."""

    def __init__(self, members: Sequence[SubstitutionSource]) -> None:
        self.members = list(members)
        self.name = ",".join(member.name for member in self.members)

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        found, seen = [], set()
        for member in self.members:
            for word in member.substitutes(words, position):
                if lookup_key(word) not in seen:
                    seen.add(lookup_key(word))
                    found.append(word)
        return found


def substitute_slots(source: SubstitutionSource, max_substitutes: int) -> int:
    """How many substitutes a word can have in ``source`` cut to ``max_substitutes``: each member of a union is cut
    on its own, so a word has up to that many per member."""
    return max_substitutes * len(source.members) if isinstance(source, UnionSource) else max_substitutes


def load_stopwords(path: Path | str) -> frozenset[str]:
    """One word per line, lower-cased; blank lines ignored."""
    note_read(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RiftError(f"cannot read stop-word list {path}: {getattr(e, 'strerror', None) or e}") from e
    return frozenset(lookup_key(line.strip()) for line in text.splitlines() if line.strip())


def build_substitution_source(
    name: str,
    data_dir: Path | str,
    *,
    exclude_stopwords: bool = True,
    keep_case: bool = True,
    max_substitutes: int | None = None,
    wordnet_dir: Path | str | None = None,
) -> SubstitutionSource:
    """The named source ("counterfitted" or "wordnet") from the shared data folder, filtered; names joined by
    commas ("counterfitted,wordnet") give the union of the sources, each filtered and cut to ``max_substitutes``
    on its own (so that the first source's substitutes do not crowd out the second's).

    ``wordnet_dir`` defaults to ``$RIFT_WORDNET_DIR`` or ``/usr/share/wordnet``.
    """
    if "," in name:
        names = [part.strip() for part in name.split(",")]
        if len(set(names)) != len(names):
            raise RiftError(f"substitution source {name!r} names a source twice")
        return UnionSource([build_substitution_source(part, data_dir, exclude_stopwords=exclude_stopwords,
                                                      keep_case=keep_case, max_substitutes=max_substitutes,
                                                      wordnet_dir=wordnet_dir) for part in names])
    data_dir = Path(data_dir)
    base: SubstitutionSource
    if name == "counterfitted":
        base = CounterFittedSynonyms(data_dir / "synonyms" / "counterfitted_neighbors.json")
    elif name == "wordnet":
        base = WordNetSynonyms(wordnet_dir)
    else:
        raise RiftError(f"unknown substitution source {name!r}: use one of {', '.join(SOURCE_NAMES)}")
    stopwords = load_stopwords(data_dir / "stopwords" / "english.txt") if exclude_stopwords else None
    return FilteredSource(base, stopwords=stopwords, keep_case=keep_case, max_substitutes=max_substitutes)


def coverage(
    source: SubstitutionSource, texts_as_words: Iterable[Sequence[str]]
) -> dict[str, int | float]:
    """Words with at least one substitute: ``{"words": n, "words_with_substitutes": m, "share": m / n}``."""
    n = m = 0
    for words in texts_as_words:
        n += len(words)
        m += sum(1 for found in source.substitutes_all(words) if found)
    return {"words": n, "words_with_substitutes": m, "share": m / n if n else 0.0}
