"""``word-ascc``: ASCC's convex combination over whole words, of any number of pieces (``rift.mixing``;
docs/METHOD_NOTES.md, "A whole-word convex combination"), its weights found by the same search as the token-level
ASCC (``rift.attacks.ascc.ASCCSearch``). At every vertex the model sees exactly the discrete text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rift.adversaries.ascc import ASCCSearchOptions
from rift.adversaries.base import AdversarialBatch, Adversary, clean_logits
from rift.attacks.ascc import ASCCSearch
from rift.data.batching import EncodedExample
from rift.mixing import WordLayout, collate_layouts, layouts_coverage, mixed_inputs, position_table, word_layout
from rift.models import input_embeddings
from rift.substitutions import substitute_slots
from rift.substitutions.tokens import piece_ids
from rift.text.words import WordAlignment, follows_space


class WordASCCAdversary(Adversary):
    name = "word-ascc"
    description = ("ASCC over whole words (convex combinations of the embeddings of words and substitutes of any "
                   "number of pieces, exact at every vertex)")
    Options = ASCCSearchOptions

    def __init__(self, args, source=None):
        super().__init__(args, source)
        self.search = ASCCSearch(steps=args.ascc_steps, learning_rate=args.ascc_learning_rate,
                                 sparsity_weight=args.ascc_sparsity_weight, objective=args.ascc_objective)
        self._marked = (None, None)  # the text can_produce was last asked about, and its layout

    def layout(self, alignment: WordAlignment) -> WordLayout:
        return word_layout(alignment, self.tokenizer, self.source, self.args.max_length)

    def setup(self, context) -> None:
        super().setup(context)
        position_table(context.model)  # fails early, with the reason, for a model it cannot mix
        self.layouts = {item.index: self.layout(item.alignment) for item in context.train_items}
        self.coverage = layouts_coverage(list(self.layouts.values()))

    def can_produce(self, alignment: WordAlignment, position: int, substitute: str) -> bool:
        # the changes of one text are asked about one after the other: its layout is computed once
        if self._marked[0] is not alignment:
            self._marked = (alignment, self.layout(alignment))
        layout = self._marked[1]
        if position not in layout.word_rows:
            return False
        words = alignment.segments[-1]
        pieces = piece_ids(self.tokenizer, " " if follows_space(words, position) else "", substitute)
        return pieces in layout.rows[layout.word_rows[position]][1:]

    def collate(self, items: Sequence[EncodedExample], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        layouts = [self.layouts[item.index] for item in items]
        return batch | collate_layouts(layouts, batch.get("token_type_ids"),
                                       substitute_slots(self.source, self.args.max_substitutes) + 1)

    def perturb(self, model, batch) -> AdversarialBatch:
        reference = clean_logits(model, batch)
        table, offset = position_table(model)
        with torch.no_grad():
            fixed = input_embeddings(model)(batch["mix_ids"]), table.detach()
        weights = self.search.optimise(
            model, batch["mix_row_mask"], lambda p: mixed_inputs(*fixed, offset, batch, p),
            clean_logits=reference, labels=batch["labels"])
        # recomputed with gradients on, so that the training step's loss reaches the embedding matrices
        inputs = mixed_inputs(input_embeddings(model)(batch["mix_ids"]), table, offset, batch, weights)
        return AdversarialBatch(inputs, reference)

