"""Words, the unit that substitution attacks change, and their alignment to a model's sub-word tokens.

A text is split into words by one regular expression: runs of letters/digits (with inner apostrophes, so that
"don't" stays one word) and single punctuation marks; counts of words (``count_words``) leave the punctuation
marks out. Every word keeps its character span, so a substitution
rewrites exactly that span and leaves the rest of the text (spacing included) untouched. The fast tokenizer's
offset mapping then tells which tokens cover which word, for WordPiece and byte-level BPE alike.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Sequence

WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
PUNCTUATION = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # character offsets into the original text, end exclusive
    end: int


def split_words(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


def count_words(words: Sequence[Word]) -> int:
    """Words proper, not punctuation marks: what the share of changed words is a share of."""
    return sum(1 for word in words if not PUNCTUATION.fullmatch(word.text))


def follows_space(words: Sequence[Word], index: int) -> bool:
    """Whether white space comes before ``words[index]`` (byte-level BPE tokenizes such a word with its space).
    Every non-space character belongs to some word, so a gap before a word is white space."""
    return words[index].start > (words[index - 1].end if index else 0)


def replace_words(text: str, words: Sequence[Word], replacements: dict[int, str]) -> str:
    """The text with words[i] replaced by replacements[i]; everything between words is kept as it was."""
    pieces, cursor = [], 0
    for index in sorted(replacements):
        word = words[index]
        pieces += [text[cursor : word.start], replacements[index]]
        cursor = word.end
    pieces.append(text[cursor:])
    return "".join(pieces)


@dataclass
class WordAlignment:
    """One (possibly paired) input, tokenized, with maps between words and token positions.

    ``segments[s]`` holds the words of text ``s`` (0 = text, 1 = text pair). ``word_tokens[s][w]`` lists the token
    positions that cover word ``w`` of segment ``s``; it is empty when truncation cut the word off.
    ``token_words[t]`` is ``(segment, word)`` for the first word that token ``t`` covers, or ``None`` for special
    and padding tokens.
    """

    input_ids: list[int]
    token_type_ids: list[int] | None
    segments: list[list[Word]]
    word_tokens: list[list[list[int]]]
    token_words: list[tuple[int, int] | None]

    def tokens_of(self, segment: int, word: int) -> list[int]:
        return self.word_tokens[segment][word]


def align(tokenizer, text: str, text_pair: str | None = None, max_length: int | None = None) -> WordAlignment:
    """Tokenize ``text`` (and ``text_pair``) and align the tokens to the words of each text."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"word alignment needs a fast tokenizer with offsets; got {type(tokenizer).__name__}")
    encoding = tokenizer(
        text,
        text_pair,
        return_offsets_mapping=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    texts = [text] if text_pair is None else [text, text_pair]
    segments = [split_words(t) for t in texts]
    starts = [[w.start for w in words] for words in segments]
    word_tokens: list[list[list[int]]] = [[[] for _ in words] for words in segments]
    token_words: list[tuple[int, int] | None] = []
    sequence_ids = encoding.sequence_ids()
    for position, ((begin, end), segment) in enumerate(zip(encoding["offset_mapping"], sequence_ids)):
        if segment is None or end <= begin:
            token_words.append(None)
            continue
        words = segments[segment]
        # the last word starting before the token's end, then walk back over every word the token overlaps
        index = bisect.bisect_left(starts[segment], end) - 1
        covered = []
        while index >= 0 and words[index].end > begin:
            covered.append(index)
            index -= 1
        for word in covered:
            word_tokens[segment][word].append(position)
        token_words.append((segment, min(covered)) if covered else None)
    return WordAlignment(
        input_ids=list(encoding["input_ids"]),
        token_type_ids=list(encoding["token_type_ids"]) if "token_type_ids" in encoding else None,
        segments=segments,
        word_tokens=word_tokens,
        token_words=token_words,
    )
