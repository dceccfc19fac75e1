"""The contract of every training adversary.

An adversary takes the model and a training batch and returns x', the adversarial input the objective trains on:
input embeddings (``inputs_embeds``, the token-level ASCC mix) or the token ids of real texts with their own
attention mask (the word-level adversaries). It also returns the clean reference it attacked: the model's
logits on x in eval mode (no dropout), computed by the adversary itself.

Rules every adversary keeps (tested for each): x' uses only substitutes that the substitution source allows, at
words the model sees; the search leaves the model's parameters, their gradients and its train/eval mode as it
found them; and ``coverage``, computed once per run in ``setup``, says which share of the source's
(word, substitute) pairs on the training split it can produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from rift.config import option
from rift.data import Example, resolve_data_dir
from rift.models import classify, eval_mode
from rift.presets import MAX_SUBSTITUTES
from rift.substitutions import (
    SOURCE_CHOICES,
    FilteredSource,
    SubstitutionSource,
    UnionSource,
    build_substitution_source,
)
from rift.substitutions.tokens import surface_coverage
from rift.text.words import WordAlignment
from rift.data.batching import EncodedExample, collate, encode_examples, model_inputs
from rift.adversaries.context import TrainingContext


@dataclass
class AdversarialBatch:
    inputs: dict[str, torch.Tensor]  # keyword arguments of ``rift.models.classify``: x'
    clean_logits: torch.Tensor  # the model's logits on x in eval mode, detached: the reference the search left


@dataclass
class SubstitutionOptions:
    """What every adversary reads: where its substitutes come from and how many per word."""

    synonyms: str = option("counterfitted", "substitution source of the adversary (two names: their union)", choices=SOURCE_CHOICES)
    max_substitutes: int = option(MAX_SUBSTITUTES, "substitutes per word (K) in the adversary's search space", at_least=1)


class Adversary:
    name: ClassVar[str]
    # one line for people: the model card says how a model was trained with it
    description: ClassVar[str] = ""
    # its own rift train options (flags and YAML keys): what it reads of the run's options besides the generic ones
    Options: ClassVar[type] = SubstitutionOptions
    # whether the source is cut to the first max_substitutes substitutes of every word (the surface trained on)
    limit_substitutes: ClassVar[bool] = True

    def __init__(self, args, source: SubstitutionSource | None = None):
        """``source`` replaces the one ``args.synonyms`` names (a user's own table)."""
        self.args = args
        self.given_source = source
        self.coverage: dict[str, int | float] = {}

    def bind(self, tokenizer) -> None:
        """Builds the substitution source (the first ``max_substitutes`` substitutes of every word: the surface
        trained on) for ``tokenizer``: all that ``can_produce`` needs."""
        self.tokenizer = tokenizer
        limit = self.args.max_substitutes if self.limit_substitutes else None
        if self.given_source is None:
            self.source = build_substitution_source(self.args.synonyms, resolve_data_dir(self.args.data_dir),
                                                    max_substitutes=limit)
        elif isinstance(self.given_source, UnionSource):  # each member cut on its own, as a named union is
            self.source = UnionSource([FilteredSource(member, keep_case=False, max_substitutes=limit)
                                       for member in self.given_source.members])
        else:
            self.source = FilteredSource(self.given_source, keep_case=False, max_substitutes=limit)

    def setup(self, context: TrainingContext) -> None:
        """Called once before training: ``bind``, then measures ``coverage`` on the training split."""
        self.context = context
        self.examples: Sequence[Example] = context.train_examples
        self.bind(context.tokenizer)

    def can_produce(self, alignment: WordAlignment, position: int, substitute: str) -> bool:
        """Whether x' can hold ``substitute`` at word ``position`` of the attacked text of ``alignment``."""
        raise NotImplementedError

    def collate(self, items: Sequence[EncodedExample], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch, with whatever the adversary needs per example added (the token-level substitutes of ASCC)."""
        return batch

    def perturb(self, model, batch: dict[str, torch.Tensor]) -> AdversarialBatch:
        raise NotImplementedError

    def log_coverage(self) -> None:
        """Say the coverage; for a union of sources, of each source too (kept in ``coverage["by_source"]``)."""
        self.context.log(
            "adversary {name}: it can produce {substitutions_represented} of the source's {substitutions} "
            "substitutions on the training split ({share_substitutions:.1%}), at {words_represented} of "
            "{words_with_substitutes} words with substitutes".format(name=self.name, **self.coverage))
        if isinstance(self.source, UnionSource):
            self.coverage["by_source"] = {member.name: self.coverage_of(member) for member in self.source.members}
            for member, found in self.coverage["by_source"].items():
                self.context.log("adversary {name}: of {member}'s {substitutions} substitutions it can produce "
                                 "{substitutions_represented} ({share_substitutions:.1%})".format(
                                     name=self.name, member=member, **found))

    def coverage_of(self, source: SubstitutionSource) -> dict[str, int | float]:
        """The share of ``source``'s (word, substitute) pairs on the training split that ``can_produce`` allows."""
        words = words_represented = pairs = represented = 0
        for item in self.context.train_items:
            alignment = item.alignment
            texts = [word.text for word in alignment.segments[-1]]
            for position, tokens in enumerate(alignment.word_tokens[-1]):
                found = source.substitutes(texts, position) if tokens else []
                if not found:
                    continue
                produced = sum(self.can_produce(alignment, position, substitute) for substitute in found)
                words, words_represented = words + 1, words_represented + bool(produced)
                pairs, represented = pairs + len(found), represented + produced
        return surface_coverage(words, words_represented, pairs, represented)


@torch.no_grad()
def clean_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits on the clean batch in eval mode; the model's mode is restored."""
    with eval_mode(model):
        return classify(model, **model_inputs(batch)).logits.detach()


def word_surface(alignment: WordAlignment, source: SubstitutionSource) -> list[list[str]]:
    """Per word of the attacked text (the hypothesis of a pair), the source's substitutes; none at a word that
    truncation cut off: what the attacks may change, and so what a full-surface adversary covers."""
    segment = len(alignment.segments) - 1
    texts = [word.text for word in alignment.segments[segment]]
    return [source.substitutes(texts, i) if tokens else [] for i, tokens in enumerate(alignment.word_tokens[segment])]


class WordAdversary(Adversary):
    """An adversary whose x' is real texts: it covers the whole surface of the source."""

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        self.alignments = {item.index: item.alignment for item in context.train_items}
        self.coverage = full_coverage([word_surface(a, self.source) for a in self.alignments.values()])

    def bind(self, tokenizer) -> None:
        super().bind(tokenizer)
        self._surface: tuple[WordAlignment | None, list[list[str]]] = (None, [])  # see can_produce

    def can_produce(self, alignment: WordAlignment, position: int, substitute: str) -> bool:
        # the changes of one text are asked about one after the other: its surface is computed once
        if self._surface[0] is not alignment:
            self._surface = (alignment, word_surface(alignment, self.source))
        return substitute in self._surface[1][position]

    def adversarial_examples(self, model, batch: dict[str, torch.Tensor]) -> tuple[list[Example], torch.Tensor]:
        """x' as texts, one per example of the batch, and the clean reference logits."""
        raise NotImplementedError

    def perturb(self, model, batch) -> AdversarialBatch:
        examples, reference = self.adversarial_examples(model, batch)
        return AdversarialBatch(encode_texts(self.tokenizer, examples, self.args.max_length,
                                             batch["input_ids"].device), reference)


def full_coverage(surfaces: Sequence[list[list[str]]]) -> dict[str, int | float]:
    """The coverage of an adversary that can make every substitution of ``surfaces``."""
    words = sum(bool(found) for surface in surfaces for found in surface)
    pairs = sum(len(found) for surface in surfaces for found in surface)
    return surface_coverage(words, words, pairs, pairs)


def encode_texts(tokenizer, examples: Sequence[Example], max_length: int, device) -> dict[str, torch.Tensor]:
    """Model inputs of real texts, padded to their longest."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    items = encode_examples(tokenizer, examples, max_length)
    return {k: v.to(device) for k, v in model_inputs(collate(items, pad)).items()}
