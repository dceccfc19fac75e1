"""Word substitutes mapped to token ids: the substitute sets S_i that ASCC combines, one per token position.

The rule. ASCC replaces the embedding at token position i by a convex combination of the embeddings of S_i
(member 0 is the original token). It mixes position by position, so a word split into several pieces, or a
substitute that would need several pieces, has no faithful single-position form: mixing piece by piece would
create non-words. Such words and substitutes are skipped, never approximated, and the skipped share is reported
by ``coverage_report``. Precisely:

- A word gets substitutes only if it lies in the attacked segment, is exactly one token, and that token covers no
  other word (from the tokenizer's offsets, via ``WordAlignment``). Words truncated away are ignored.
- A substitute is usable only if it is exactly one token, other than the unknown token, when tokenized as it
  would appear in the text: with a leading space when the original word follows white space, so that byte-level
  BPE (RoBERTa) yields ``'Ġgood'`` rather than ``'good'`` (WordPiece ignores the space).
- Substitute ids keep the source's order, without duplicates or the original id, at most K of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rift.errors import RiftError
from rift.substitutions.base import SubstitutionSource
from rift.text.words import WordAlignment, follows_space

# Substitute tokenization is the hot loop (every word of every example, K+ candidates each), and the same
# (prefix, word) pairs recur across examples: one cache per tokenizer, freed with it.
_TOKEN_CACHES: weakref.WeakKeyDictionary[object, dict[tuple[str, str], tuple[int, ...]]] = weakref.WeakKeyDictionary()


def token_ids(tokenizer, prefix: str, word: str) -> tuple[int, ...]:
    """The token ids of ``prefix + word`` as it would stand in a text, unknown tokens included."""
    cache = _TOKEN_CACHES.setdefault(tokenizer, {})
    key = (prefix, word)
    if key not in cache:
        cache[key] = tuple(tokenizer(prefix + word, add_special_tokens=False)["input_ids"])
    return cache[key]


def piece_ids(tokenizer, prefix: str, word: str) -> tuple[int, ...] | None:
    """The token ids of ``prefix + word`` as it would stand in a text, or None if it has none or an unknown one."""
    ids = token_ids(tokenizer, prefix, word)
    return ids if ids and tokenizer.unk_token_id not in ids else None


def single_token_id(tokenizer, prefix: str, word: str) -> int | None:
    """The id of ``prefix + word`` if it is exactly one known token, else None."""
    pieces = piece_ids(tokenizer, prefix, word)
    return pieces[0] if pieces is not None and len(pieces) == 1 else None


def surface_coverage(words: int, words_represented: int, substitutions: int, substitutions_represented: int
                     ) -> dict[str, int | float]:
    """An adversary's coverage of the source's surface: of the words with substitutes, those it can change, and
    of the (word, substitute) pairs, those it can produce (``share_substitutions``)."""
    return {"words_with_substitutes": words, "words_represented": words_represented,
            "share_represented": words_represented / words if words else 0.0,
            "substitutions": substitutions, "substitutions_represented": substitutions_represented,
            "share_substitutions": substitutions_represented / substitutions if substitutions else 0.0}


@dataclass
class TokenSubstitutions:
    """For one tokenized input: per token position, the original token id plus up to K substitute token ids."""

    ids: list[list[int]]  # one list per token; ids[t][0] is the original id, ids[t][1:] its substitutes
    words_with_substitutes: int  # words of the attacked segment that the source gives >= 1 substitute
    words_represented: int  # of those, words that got >= 1 token-level substitute
    substitutions: int = 0  # (word, substitute) pairs of the source at those words, its first K substitutes each
    substitutions_represented: int = 0  # of those pairs, the ones a token position holds


def token_substitutions(
    alignment: WordAlignment,
    tokenizer,
    source: SubstitutionSource,
    max_substitutes: int,
    segment: int | None = None,
) -> TokenSubstitutions:
    """Substitute token ids for every position of ``alignment``; ``segment`` is the attacked text (default: the
    last one, i.e. the hypothesis of a pair)."""
    if max_substitutes < 0:
        raise RiftError(f"max_substitutes must be 0 or more, got {max_substitutes}")
    segment = len(alignment.segments) - 1 if segment is None else segment
    if not 0 <= segment < len(alignment.segments):
        raise RiftError(f"segment {segment} does not exist; the input has {len(alignment.segments)} texts")
    ids = [[token_id] for token_id in alignment.input_ids]
    words = alignment.segments[segment]
    word_tokens = alignment.word_tokens[segment]
    texts = [word.text for word in words]
    with_substitutes = represented = pairs = pairs_represented = 0
    for index, tokens in enumerate(word_tokens):
        if not tokens:
            continue
        found = source.substitutes(texts, index)
        if not found:
            continue
        with_substitutes += 1
        pairs += len(found[:max_substitutes])
        if len(tokens) != 1:
            continue
        # a token shared with a neighbouring word (e.g. BPE's '?!') is not this word alone
        shared = alignment.token_words[tokens[0]] != (segment, index) or (
            index + 1 < len(words) and word_tokens[index + 1][:1] == tokens
        )
        if shared:
            continue
        slot = ids[tokens[0]]
        prefix = " " if follows_space(words, index) else ""
        for substitute in found:
            if len(slot) > max_substitutes:
                break
            token_id = single_token_id(tokenizer, prefix, substitute)
            if token_id is not None and token_id not in slot:
                slot.append(token_id)
        represented += len(slot) > 1
        pairs_represented += sum(single_token_id(tokenizer, prefix, substitute) in slot[1:]
                                 for substitute in found[:max_substitutes])
    return TokenSubstitutions(ids, with_substitutes, represented, pairs, pairs_represented)


def collate_substitutions(
    items: Sequence[TokenSubstitutions], width: int, max_substitutes: int, pad_token_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot ids [B, width, K+1] (long) and their validity mask (bool), to match a batch padded to ``width``.

    Slot 0 is always valid: the original id at real tokens, ``pad_token_id`` at padding. So a softmax over the
    valid slots is never taken over an empty row (which gives NaN), and at a position without substitutes the
    convex combination is exactly the original embedding. Substitutes beyond K are dropped; missing ones are
    padded with id 0 and masked out.
    """
    slots = max_substitutes + 1
    ids, mask = [], []
    for item in items:
        if len(item.ids) > width:
            raise RiftError(f"an input has {len(item.ids)} tokens, more than the batch width {width}")
        rows = [row[:slots] for row in item.ids] + [[pad_token_id]] * (width - len(item.ids))
        ids.append([row + [0] * (slots - len(row)) for row in rows])
        mask.append([[True] * len(row) + [False] * (slots - len(row)) for row in rows])
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.bool)


def coverage_report(items: Sequence[TokenSubstitutions]) -> dict[str, int | float]:
    """How much of the word-level attack surface the token level represents: words, and (word, substitute) pairs
    (``share_substitutions``: the share of the source's substitutions that a training adversary mixing tokens can
    produce)."""
    counts = [len(row) - 1 for item in items for row in item.ids if len(row) > 1]
    return surface_coverage(
        sum(item.words_with_substitutes for item in items), sum(item.words_represented for item in items),
        sum(item.substitutions for item in items), sum(item.substitutions_represented for item in items),
    ) | {
        "positions_with_substitutes": len(counts),
        "mean_substitutes_per_position": sum(counts) / len(counts) if counts else 0.0,
    }
