"""The interface every substitution source implements, and the word rules the sources share."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

# the sources rift ships, and what --synonyms takes: one of them or their union (a comma between the names)
SOURCE_NAMES = ("counterfitted", "wordnet")
SOURCE_CHOICES = (*SOURCE_NAMES, "counterfitted,wordnet")

# A word that may be substituted, or used as a substitute: letters only, with internal apostrophes
# ("don't", "o'clock"). The tokenizer (\w+(?:['’]\w+)*|[^\w\s]) splits hyphens off as their own
# word, so a hyphenated substitute would come back as three words and break word alignment.
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def is_word(text: str) -> bool:
    """True for an alphabetic word (internal apostrophes allowed); False for punctuation, numbers, '_'."""
    return _WORD.fullmatch(text) is not None


def lookup_key(word: str) -> str:
    """The form looked up in lower-case tables: lower-cased, with the typographic apostrophe made plain."""
    return word.lower().replace("’", "'")


def match_case(template: str, word: str) -> str:
    """``word`` cased like ``template``: "GOOD" -> "GREAT", "Good" -> "Great", "good" -> "great"."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[0].isupper():
        return word[0].upper() + word[1:]
    return word


class SubstitutionSource(ABC):
    """Where the allowed replacements of a word come from (the attacker's "attack surface")."""

    name: str

    @abstractmethod
    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        """Allowed replacements for ``words[position]``: never the word itself, no duplicates, each a
        single word, in a deterministic order. ``words`` is the whole text so that context-aware
        sources are possible."""

    def hops(self, words: Sequence[str], position: int) -> list[int]:
        """The neighbourhood order of each of ``substitutes(words, position)``: 1, a substitute of the word itself,
        for every source; a ``NeighbourhoodSource`` adds 2, a substitute of a substitute."""
        return [1] * len(self.substitutes(words, position))

    def substitutes_all(self, words: Sequence[str]) -> list[list[str]]:
        """One list of substitutes per position of ``words``."""
        return [self.substitutes(words, i) for i in range(len(words))]
