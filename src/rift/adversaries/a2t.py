"""``a2t``: the training attack of A2T (Yoo and Qi, 2021), TextAttack's ``A2TYoo2021`` recipe on rift's
substitution sources, whose x' is a real text.

Per batch, one eval-mode pass over the clean batch gives the gradient of the loss with respect to the input
embeddings. A word's importance is the L1 norm of the mean of its pieces' gradients (TextAttack's
``GreedyWordSwapWIR(wir_method="gradient")``); the words are visited from the most important down, and at each
every substitute is scored in the current text (``rift.attacks.engine.greedy_substitution``, PWWS's greedy step):
one that changes the prediction ends the search, else the one that lowers p(y) most is kept if it lowers it at all.
At most max(ceil(share x words), min changes) words change (A2T's ``MaxModificationRate(0.1, min_threshold=4)``),
within a query budget per example and step (A2T's 200).

Where it differs from A2T (docs/METHOD_NOTES.md): the substitutes are the run's source (the counter-fitted
neighbours, 8 per word by default) instead of 20 counter-fitted neighbours filtered by word-embedding cosine 0.8,
part of speech and SBERT similarity 0.9. As an adversary of other methods (``--adversary a2t``) it gives an x' for
every row; the ``a2t`` method takes only the first successful ones of a seeded order (``successful_examples``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift.adversaries.base import SubstitutionOptions, WordAdversary
from rift.attacks.engine import Search, Target, WordSubstitutionAttack, greedy_substitution
from rift.attacks.wrapper import ModelWrapper
from rift.config import option
from rift.data import Example
from rift.models import classify, eval_mode, input_embeddings, unwrap
from rift.text.words import WordAlignment


@dataclass
class A2TAdversaryOptions(SubstitutionOptions):
    a2t_max_changed_share: float = option(0.1, "a2t: the share of an example's words that may change", above=0,
                                          at_most=1)
    a2t_min_changes: int = option(4, "a2t: words that may change however short the example (A2T's threshold)",
                                  at_least=1)
    a2t_query_budget: int = option(200, "a2t: model queries per example and step, the clean one included",
                                   at_least=2)


def word_importance(alignment: WordAlignment, gradient: torch.Tensor) -> dict[int, float]:
    """Per word of the attacked text with tokens, the L1 norm of the mean of its pieces' gradients [L, H]."""
    segment = len(alignment.segments) - 1
    return {i: float(gradient[tokens].mean(0).abs().sum())
            for i, tokens in enumerate(alignment.word_tokens[segment]) if tokens}


class GradientGreedySearch(WordSubstitutionAttack):
    """The greedy search in the order of ``importance`` (keyed by the identity of the example object), with A2T's
    bound on the number of changed words."""

    name = "gradient-greedy"

    def __init__(self, model: ModelWrapper, source, *, max_changed_share: float, min_changes: int, query_budget: int):
        super().__init__(model, source, max_changed_share=max_changed_share, query_budget=query_budget)
        self.min_changes = min_changes
        self.importance: dict[int, dict[int, float]] = {}

    def _max_changes(self, num_words: int) -> int:
        return min(num_words, max(math.ceil(self.max_changed_share * num_words - 1e-9), self.min_changes))

    def search(self, target: Target, rng: random.Random) -> Search:
        importance = self.importance.get(id(target.example), {})
        order = sorted((i for i in target.positions if target.substitutes[i]),
                       key=lambda i: (-importance.get(i, 0.0), i))
        return (yield from greedy_substitution(target, order))


class A2TAdversary(WordAdversary):
    name = "a2t"
    description = ("A2T's training attack: words in the order of their gradient's norm, each swapped greedily for "
                   "the substitute that lowers p(y) most, at most 10% of the words (Yoo and Qi 2021)")
    Options = A2TAdversaryOptions

    def adversarial_examples(self, model, batch) -> tuple[list[Example], torch.Tensor]:
        search, logits = self.prepared_search(model, batch)
        indices = batch["index"].tolist()
        examples = [self.examples[i] for i in indices]
        with eval_mode(unwrap(model)):
            results = search.attack(examples, indices)
        return [Example(r.adversarial_text, e.label, r.adversarial_text_pair) for r, e in zip(results, examples)], logits

    def successful_examples(self, model, batch, wanted: int, order: list[int]) -> tuple[list[int], list[Example]]:
        """A2T's way of adding adversarial examples: the rows of the batch in ``order`` are attacked, a few at a
        time, until ``wanted`` attacks have changed the prediction (or every row was tried); the rows that did and
        their x', in that order."""
        search, _ = self.prepared_search(model, batch)
        indices = batch["index"].tolist()
        rows, found, tried = [], [], 0
        with eval_mode(unwrap(model)):
            while len(rows) < wanted and tried < len(order):
                chunk = order[tried:tried + wanted - len(rows)]
                tried += len(chunk)
                examples = [self.examples[indices[row]] for row in chunk]
                for row, example, result in zip(chunk, examples, search.attack(examples, [indices[r] for r in chunk])):
                    if result.status == "succeeded":
                        rows.append(row)
                        found.append(Example(result.adversarial_text, example.label, result.adversarial_text_pair))
        return rows, found

    def prepared_search(self, model, batch) -> tuple[GradientGreedySearch, torch.Tensor]:
        """The search over the batch's examples, ranked by one eval-mode gradient on the clean batch, and the
        batch's clean logits."""
        plain = unwrap(model)
        with eval_mode(plain):
            embeds = input_embeddings(plain)(batch["input_ids"]).detach().requires_grad_(True)
            inputs = {k: batch[k] for k in ("attention_mask", "token_type_ids") if k in batch}
            logits = classify(plain, inputs_embeds=embeds, **inputs).logits
            # only the embeddings' gradient is computed; no parameter's .grad is touched
            (gradient,) = torch.autograd.grad(F.cross_entropy(logits.float(), batch["labels"], reduction="sum"), [embeds])
        search = GradientGreedySearch(
            ModelWrapper(plain, self.tokenizer, batch_size=self.args.eval_batch_size, max_length=self.args.max_length),
            self.source, max_changed_share=self.args.a2t_max_changed_share, min_changes=self.args.a2t_min_changes,
            query_budget=self.args.a2t_query_budget)
        for row, index in enumerate(batch["index"].tolist()):
            search.importance[id(self.examples[index])] = word_importance(self.alignments[index], gradient[row].float())
        return search, logits.detach()
