"""``discrete``: a budgeted word-level search run inside training, whose x' is a real text.

It works on words, so it covers every substitution the evaluation attacks may make, whatever the number of
sub-word pieces of the word or of its substitute, on any tokenizer. Per batch:

1. One eval-mode pass over the clean batch gives the clean reference and the gradient of the loss with respect to
   the input embeddings.
2. Every allowed (word, substitute) pair of every example is ranked by the first-order estimate of the loss change
   it causes (HotFlip's term, extended to words of several pieces):
   ``(mean of the substitute's piece embeddings - mean of the word's piece embeddings) . sum of the word's piece
   gradients``. For a one-piece word and substitute it is exactly the first-order term; otherwise it is a ranking
   heuristic only, since every choice is then scored by the model.
3. Through the attack engine, batched across the batch's examples (``GuidedGreedySearch``): the top ``candidates``
   pairs are scored as single substitutions; one that changes the prediction ends the search; otherwise the best
   substitute of each scored word is stacked onto the text, best first, each kept if it lowers p(y), until the
   prediction changes or the query budget ends (the engine then keeps the most adversarial text scored).

Examples the model already misclassifies are not searched (the engine's rule, as in A2T, Yoo & Qi 2021): their x'
is x. The search draws nothing at random, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift.adversaries.base import SubstitutionOptions, WordAdversary, word_surface
from rift.attacks.engine import Replacements, Search, Target, WordSubstitutionAttack
from rift.attacks.wrapper import ModelWrapper
from rift.config import option
from rift.data import Example
from rift.models import classify, eval_mode, input_embeddings, unwrap
from rift.substitutions.tokens import token_ids
from rift.text.words import WordAlignment, follows_space

Estimate = dict[tuple[int, str], float]  # (word position, substitute) -> estimated rise of the loss


class GuidedGreedySearch(WordSubstitutionAttack):
    """The search of step 3, given each example's first-order estimates (``estimates``, keyed by the identity of
    the example object: the engine's targets carry the example, not the caller's key)."""

    name = "guided-greedy"

    def __init__(self, model: ModelWrapper, source, *, candidates: int, query_budget: int, seed: int = 0):
        super().__init__(model, source, query_budget=query_budget, seed=seed)
        self.candidates = candidates
        self.estimates: dict[int, Estimate] = {}

    def search(self, target: Target, rng: random.Random) -> Search:
        estimate = self.estimates.get(id(target.example), {})
        singles = [(i, word) for i in target.positions for word in target.substitutes[i]]
        if not singles or target.max_changes == 0:
            return {}
        ranked = sorted(singles, key=lambda pair: -estimate.get(pair, float("-inf")))[: self.candidates]
        candidates: list[Replacements] = [{i: word} for i, word in ranked]
        probabilities = yield candidates
        p = target.true_probability(probabilities)
        flipped = target.succeeded(probabilities)
        if flipped.any():
            return candidates[int(torch.where(flipped, p, torch.inf).argmin())]
        p_clean = target.true_probability(target.clean_probabilities).item()
        best: dict[int, tuple[float, str]] = {}
        for (i, word), q in zip(ranked, p.tolist()):
            if q < p_clean and q < best.get(i, (float("inf"),))[0]:
                best[i] = (q, word)
        current: Replacements = {}
        p_current = p_clean
        for i, (q, word) in sorted(best.items(), key=lambda item: item[1][0]):
            if len(current) == target.max_changes:
                break
            if not current:  # scored alone already
                current, p_current = {i: word}, q
                continue
            candidate = current | {i: word}
            probabilities = yield [candidate]
            if target.succeeded(probabilities)[0]:
                return candidate
            q = target.true_probability(probabilities)[0].item()
            if q < p_current:
                current, p_current = candidate, q
        return current


def first_order_estimates(tokenizer, embedding: torch.Tensor, alignment: WordAlignment, gradient: torch.Tensor,
                          surface: list[list[str]]) -> Estimate:
    """Step 2 for one example: ``gradient`` [L, H] of the loss at its input embeddings, ``embedding`` the matrix."""
    segment = len(alignment.segments) - 1
    words = alignment.segments[segment]
    estimates: Estimate = {}
    for i, found in enumerate(surface):
        if not found:
            continue
        tokens = alignment.word_tokens[segment][i]
        slope = gradient[tokens].sum(0)
        here = embedding[torch.tensor([alignment.input_ids[t] for t in tokens])].mean(0)
        prefix = " " if follows_space(words, i) else ""
        for word in found:
            ids = token_ids(tokenizer, prefix, word) or (tokenizer.unk_token_id or 0,)
            estimates[i, word] = float((embedding[torch.tensor(ids)].mean(0) - here) @ slope)
    return estimates


@dataclass
class DiscreteOptions(SubstitutionOptions):
    adversary_candidates: int = option(16, "discrete: single substitutions scored per example, the best by the "
                                           "gradient's first-order estimate", at_least=1)
    adversary_query_budget: int = option(32, "discrete: model queries per example and step, the clean one included",
                                         at_least=2)


class DiscreteAdversary(WordAdversary):
    name = "discrete"
    description = "a budgeted gradient-guided word-substitution search whose adversarial inputs are real texts"
    Options = DiscreteOptions

    def adversarial_examples(self, model, batch) -> tuple[list[Example], torch.Tensor]:
        plain = unwrap(model)
        with eval_mode(plain):
            embedding = input_embeddings(plain)
            embeds = embedding(batch["input_ids"]).detach().requires_grad_(True)
            inputs = {k: batch[k] for k in ("attention_mask", "token_type_ids") if k in batch}
            logits = classify(plain, inputs_embeds=embeds, **inputs).logits
            # torch.autograd.grad: only the embeddings' gradient is computed; no parameter's .grad is touched
            (gradient,) = torch.autograd.grad(F.cross_entropy(logits.float(), batch["labels"], reduction="sum"), [embeds])
            reference = logits.detach()
            indices = batch["index"].tolist()
            examples = [self.examples[i] for i in indices]
            search = GuidedGreedySearch(
                ModelWrapper(plain, self.tokenizer, batch_size=self.args.eval_batch_size, max_length=self.args.max_length),
                self.source, candidates=self.args.adversary_candidates, query_budget=self.args.adversary_query_budget,
            )
            with torch.no_grad():
                matrix = embedding.weight.detach()
                for row, (index, example) in enumerate(zip(indices, examples)):
                    alignment = self.alignments[index]
                    search.estimates[id(example)] = first_order_estimates(
                        self.tokenizer, matrix, alignment, gradient[row].float(), word_surface(alignment, self.source))
            results = search.attack(examples, indices)
        return [Example(r.adversarial_text, e.label, r.adversarial_text_pair) for r, e in zip(results, examples)], reference
