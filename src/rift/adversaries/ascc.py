"""``ascc``: the token-level ASCC adversary of the paper (Dong et al., ICLR 2021).

It mixes the embeddings of each token position's substitutes, so it covers only words that are one token with
substitutes that are one token (``rift.substitutions.tokens`` gives the rule); its ``coverage`` says how much of
the source's surface that is (on SST-2 with MiniLM's WordPiece, about 88% of the words with substitutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rift.adversaries.base import AdversarialBatch, Adversary, SubstitutionOptions, clean_logits
from rift.attacks.ascc import ASCCSearch, adversarial_embeddings
from rift.config import option
from rift.substitutions import substitute_slots
from rift.substitutions.tokens import (
    collate_substitutions,
    coverage_report,
    single_token_id,
    token_substitutions,
)
from rift.text.words import WordAlignment, follows_space
from rift.data.batching import EncodedExample


@dataclass
class ASCCSearchOptions(SubstitutionOptions):
    """The search of the ASCC adversaries (token-level and over whole words)."""

    ascc_steps: int = option(10, "Adam steps of the ASCC adversary", at_least=1)
    ascc_learning_rate: float = option(1.0, "learning rate of the ASCC weights", above=0)
    ascc_sparsity_weight: float = option(15.0, "weight of the entropy (sparsity) term of ASCC", at_least=0)
    ascc_objective: str = option("kl", "what the training adversary maximises: kl, the divergence from the clean "
                                       "prediction (the paper's), or ce, the cross-entropy of the label (stronger "
                                       "in few steps; see docs/METHOD_NOTES.md)", choices=("kl", "ce"))


class TokenASCCAdversary(Adversary):
    name = "ascc"
    description = "token-level ASCC (convex combinations of single-token substitutes' embeddings)"
    Options = ASCCSearchOptions
    # a position keeps the first K of the word's substitutes that are single tokens, wherever they stand in the
    # source's list
    limit_substitutes = False

    def __init__(self, args, source=None):
        super().__init__(args, source)
        self.search = ASCCSearch(steps=args.ascc_steps, learning_rate=args.ascc_learning_rate,
                                 sparsity_weight=args.ascc_sparsity_weight, objective=args.ascc_objective)
        self._marked = (None, None)  # the text can_produce was last asked about, and its token substitutions

    @property
    def slots(self) -> int:
        """Substitutes per token slot: K, or K per member of a union of sources."""
        return substitute_slots(self.source, self.args.max_substitutes)

    def setup(self, context) -> None:
        super().setup(context)
        self.substitutions = {
            item.index: token_substitutions(item.alignment, context.tokenizer, self.source, self.slots)
            for item in context.train_items
        }
        self.coverage = coverage_report(list(self.substitutions.values()))

    def can_produce(self, alignment: WordAlignment, position: int, substitute: str) -> bool:
        segment = len(alignment.segments) - 1
        tokens = alignment.word_tokens[segment][position]
        if not tokens:  # cut off by truncation
            return False
        # a word of several pieces (or sharing its token) has no substitutes in its slot; the substitutions are
        # computed once per text, whose changes are asked about one after the other
        if self._marked[0] is not alignment:
            self._marked = (alignment, token_substitutions(alignment, self.tokenizer, self.source,
                                                           self.slots))
        slot = self._marked[1].ids[tokens[0]]
        prefix = " " if follows_space(alignment.segments[segment], position) else ""
        return single_token_id(self.tokenizer, prefix, substitute) in slot[1:]

    def collate(self, items: Sequence[EncodedExample], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, mask = collate_substitutions(
            [self.substitutions[item.index] for item in items], batch["input_ids"].shape[1], self.slots
        )
        return batch | {"substitute_ids": ids, "substitute_mask": mask}

    def perturb(self, model, batch) -> AdversarialBatch:
        reference = clean_logits(model, batch)
        weights = self.search.find_weights(
            model, batch["substitute_ids"], batch["substitute_mask"], batch["attention_mask"],
            batch.get("token_type_ids"), clean_logits=reference, labels=batch["labels"],
        )
        # recomputed with gradients on, so that the training step's loss reaches the embedding matrix
        inputs = {"inputs_embeds": adversarial_embeddings(model, batch["substitute_ids"], weights),
                  "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"]
        return AdversarialBatch(inputs, reference)
