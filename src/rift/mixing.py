"""Convex combinations of whole words and their substitutes, of any number of pieces (docs/METHOD_NOTES.md, "A
whole-word convex combination"): what the ``word-ascc`` adversary searches over and what DNE (``--method dne``)
samples from, in training and when it predicts.

Each word with substitutes becomes a row of candidates {s_0 = the word, s_1, ...} of n_j pieces and a block of
max_j n_j token slots; every other token is a row of one. For convex weights p over a row's candidates:

- slot k of the block holds the convex combination of the k-th pieces of the candidates that have one, and has the
  presence q_k = sum_{j: n_j > k} p_j (1 at fixed tokens, 0 at padding);
- attention to a slot is scaled by its presence (additive bias log q, through ``rift.models.classify``'s soft
  mask), and mean pooling weighs it by q;
- a slot sits at the expected position sum of the presences before it, its position embedding interpolated
  between the two nearest integer positions (added to the word embeddings as a correction, since the model adds
  its own position embeddings).

At every vertex (one candidate per word) the model therefore sees exactly the discrete text: the same tokens at
the same positions, the absent slots invisible. Limits: absolute position embeddings only; a candidate is dropped
(and the coverage says so) where the text would no longer fit in ``max_length`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rift.errors import RiftError
from rift.models import unwrap
from rift.substitutions import SubstitutionSource
from rift.substitutions.tokens import piece_ids, surface_coverage
from rift.text.words import WordAlignment, follows_space


@dataclass
class WordLayout:
    """One input laid out for the whole-word mix."""

    rows: list[list[tuple[int, ...]]]  # per row, its candidates' piece ids (row 0 of a word: the word itself)
    # per row, each candidate's neighbourhood order: 0 for the word itself, then the source's ``hops``
    hops: list[list[int]]
    row_tokens: list[int]  # per row, the token of the input it starts at (its type id is the row's)
    word_rows: dict[int, int]  # word of the attacked segment -> its row, for words with candidates
    words_with_substitutes: int
    substitutions: int  # (word, substitute) pairs of the source at the words the model sees
    substitutions_represented: int  # of those, the pairs a row holds


def word_layout(alignment: WordAlignment, tokenizer, source: SubstitutionSource, max_length: int) -> WordLayout:
    """Rows of the attacked segment's words (the hypothesis of a pair) and their substitutes, in token order.

    A word gets a row of candidates only if its tokens are its own (no token shared with a neighbouring word, as
    byte-level BPE's '?!') and contiguous; a substitute only if it tokenizes to known pieces, differs from the
    candidates before it, and the text still fits in ``max_length`` tokens whatever the other words become.
    """
    segment = len(alignment.segments) - 1
    words = alignment.segments[segment]
    word_tokens = alignment.word_tokens[segment]
    texts = [word.text for word in words]
    room = max_length - len(alignment.input_ids)
    starts: dict[int, tuple[int, list[tuple[int, ...]], list[int]]] = {}
    with_substitutes = pairs = represented = 0
    for index, tokens in enumerate(word_tokens):
        found = source.substitutes(texts, index) if tokens else []
        if not found:
            continue
        with_substitutes += 1
        pairs += len(found)
        own = all(alignment.token_words[t] == (segment, index) for t in tokens) and not (
            index + 1 < len(words) and set(word_tokens[index + 1]) & set(tokens))
        if not own or tokens != list(range(tokens[0], tokens[0] + len(tokens))):
            continue
        prefix = " " if follows_space(words, index) else ""
        candidates, orders = [tuple(alignment.input_ids[t] for t in tokens)], [0]
        for substitute, hop in zip(found, source.hops(texts, index)):
            pieces = piece_ids(tokenizer, prefix, substitute)
            if pieces is None:
                continue
            if pieces not in candidates:
                growth = max(0, len(pieces) - max(map(len, candidates)))
                if growth > room:
                    continue
                room -= growth
                candidates.append(pieces)
                orders.append(hop)
            represented += 1
        if len(candidates) > 1:
            starts[tokens[0]] = (index, candidates, orders)
    rows, hops, row_tokens, word_rows = [], [], [], {}
    token = 0
    while token < len(alignment.input_ids):
        row_tokens.append(token)
        if token in starts:
            index, candidates, orders = starts[token]
            word_rows[index] = len(rows)
            rows.append(candidates)
            hops.append(orders)
            token += len(candidates[0])
        else:
            rows.append([(alignment.input_ids[token],)])
            hops.append([0])
            token += 1
    return WordLayout(rows, hops, row_tokens, word_rows, with_substitutes, pairs, represented)


def layouts_coverage(layouts: Sequence[WordLayout]) -> dict[str, int | float]:
    """The share of the source's (word, substitute) pairs on ``layouts`` that their rows hold."""
    return surface_coverage(
        sum(layout.words_with_substitutes for layout in layouts), sum(len(layout.word_rows) for layout in layouts),
        sum(layout.substitutions for layout in layouts), sum(layout.substitutions_represented for layout in layouts))


def widest_row(layouts: Sequence[WordLayout]) -> int:
    """The most candidates any row of ``layouts`` has: the fewest slots ``collate_layouts`` can take."""
    return max(len(row) for layout in layouts for row in layout.rows)


def collate_layouts(layouts: Sequence[WordLayout], token_type_ids: torch.Tensor | None, candidates: int
                    ) -> dict[str, torch.Tensor]:
    """The batch's slots: ``mix_ids`` [B, L, C] (the piece of each candidate of the slot's row, 0 where none),
    ``mix_valid`` [B, L, C] (whether it has one; padding slots have none), ``mix_rows`` [B, L] (the slot's row),
    ``mix_row_mask`` [B, R, C] (the rows' candidates; a padding row has one, so its softmax is defined),
    ``mix_hops`` [B, R, C] (each candidate's neighbourhood order) and, for models with segments,
    ``mix_token_type_ids`` [B, L]."""
    slots = [[(row, k) for row, found in enumerate(layout.rows) for k in range(max(map(len, found)))]
             for layout in layouts]
    width, height = max(map(len, slots)), max(len(layout.rows) for layout in layouts)
    batch = len(layouts)
    ids = torch.zeros(batch, width, candidates, dtype=torch.long)
    valid = torch.zeros(batch, width, candidates, dtype=torch.bool)
    rows = torch.zeros(batch, width, dtype=torch.long)
    row_mask = torch.zeros(batch, height, candidates, dtype=torch.bool)
    row_mask[:, :, 0] = True
    hops = torch.zeros(batch, height, candidates, dtype=torch.long)
    types = torch.zeros(batch, width, dtype=torch.long)
    for b, (layout, layout_slots) in enumerate(zip(layouts, slots)):
        for r, found in enumerate(layout.rows):
            if len(found) > candidates:
                raise RiftError(f"a word has {len(found) - 1} substitutes, more than the {candidates - 1} allowed")
            row_mask[b, r, :len(found)] = True
            hops[b, r, :len(found)] = torch.tensor(layout.hops[r])
        for position, (row, k) in enumerate(layout_slots):
            rows[b, position] = row
            if token_type_ids is not None:
                types[b, position] = token_type_ids[b, layout.row_tokens[row]]
            for c, pieces in enumerate(layout.rows[row]):
                if k < len(pieces):
                    ids[b, position, c], valid[b, position, c] = pieces[k], True
    out = {"mix_ids": ids, "mix_valid": valid, "mix_rows": rows, "mix_row_mask": row_mask, "mix_hops": hops}
    if token_type_ids is not None:
        out["mix_token_type_ids"] = types
    return out


def position_table(model) -> tuple[torch.Tensor, int]:
    """The model's absolute position embeddings and the position id of its first token (0 for BERT; RoBERTa's
    start after its padding index)."""
    base = unwrap(model).base_model
    embeddings = getattr(base, "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    kind = getattr(base.config, "position_embedding_type", "absolute")
    if not isinstance(table, torch.nn.Embedding) or kind not in (None, "absolute"):
        raise RiftError(f"mixing whole words (--adversary word-ascc, --method dne) needs a model with absolute "
                        f"position embeddings; {type(base).__name__} has none; use --adversary discrete")
    return table.weight, 0 if table.padding_idx is None else table.padding_idx + 1


def mixed_inputs(embeddings: torch.Tensor, table: torch.Tensor, offset: int, batch: dict[str, torch.Tensor],
                 probabilities: torch.Tensor) -> dict[str, torch.Tensor]:
    """The keyword arguments of ``classify`` for convex weights ``probabilities`` [B, R, C] over the rows'
    candidates; ``embeddings`` [B, L, C, H] are those of ``batch["mix_ids"]``, ``table`` the position embeddings."""
    rows = batch["mix_rows"]
    weights = probabilities.gather(1, rows[..., None].expand(-1, -1, probabilities.shape[-1]))
    weights = weights * batch["mix_valid"]  # [B, L, C]
    # a sum of probabilities; rounding may take it an ulp past 1, which would make the attention bias log q positive
    presence = weights.sum(-1).clamp(max=1.0)  # [B, L]
    content = torch.einsum("blch,blc->blh", embeddings,
                           (weights / presence.clamp_min(1e-12)[..., None]).to(embeddings.dtype))
    # each slot at the expected number of present slots before it, interpolated between integer positions
    positions = offset + presence.cumsum(-1) - presence
    low = positions.detach().floor().long().clamp(0, table.shape[0] - 1)
    high = (low + 1).clamp(max=table.shape[0] - 1)
    fraction = (positions - low).clamp(0, 1)[..., None].to(table.dtype)
    interpolated = table[low] * (1 - fraction) + table[high] * fraction
    default = table[offset:offset + rows.shape[1]][None]  # what the model adds itself
    inputs = {"inputs_embeds": content + interpolated - default, "attention_mask": presence}
    if "mix_token_type_ids" in batch:
        inputs["token_type_ids"] = batch["mix_token_type_ids"]
    return inputs
