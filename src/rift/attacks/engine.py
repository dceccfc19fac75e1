"""The engine every word-substitution attack runs on, in TextAttack's terms:

- goal: untargeted misclassification (``Target.succeeded``); searches minimise p(y), the true label's probability;
- transformation: replace words by substitutes from a ``SubstitutionSource`` (its ``FilteredSource`` already
  drops stop words when asked to);
- constraints: only allowed substitutes, at words the model sees (not cut off by truncation), filtered by an
  optional ``LMConstraint``, and at most ``max_changed_share`` of the words changed (``Target.allows``; words
  proper, punctuation marks not counted); context constraints (``rift.attacks.constraints``: part of speech,
  sentence similarity) judge each substitution in the text the search makes it in (``Target.admissible``);
- search: a generator per example (``WordSubstitutionAttack.search``) that yields lists of candidates and is sent
  their class probabilities, and finally returns the candidate it settles on.

The engine runs the searches of all examples in lock step: each round, every example's candidates go to the model
in one call, so a batch mixes candidates of several examples. It counts each example's queries (the clean
prediction included; an input the example asked for before is free, one that another example asked for is not),
stops a search when its query budget (fixed, or so many per word) would be exceeded, and seeds each example's
random generator from the attack's seed and the example's index, so that a result does not depend on which other
examples ran with it.
"""

from __future__ import annotations

import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import torch

from rift.attacks.lm import LMConstraint
from rift.attacks.results import AttackResult, WordChange
from rift.attacks.wrapper import Inputs, Key, ModelWrapper
from rift.config import NoOptions
from rift.data import Example
from rift.errors import RiftError
from rift.substitutions import SubstitutionSource
from rift.attacks.target import ContextConstraint, Replacements, Target
from rift.text.words import align, count_words, split_words

Search = Generator[list[Replacements], torch.Tensor, Replacements]


def greedy_substitution(target: Target, order: Sequence[int]) -> Search:
    """The greedy search of PWWS and TextFooler, as TextAttack's ``GreedyWordSwapWIR`` runs it: for each position
    in ``order``, every substitute of that word is scored in the current (already perturbed) text; one that changes
    the prediction ends the search (the lowest p(y) if several do), else the one that lowers p(y) most is kept if it
    lowers p(y) at all. Only substitutes the context constraints admit in the current text are scored."""
    current: Replacements = {}
    p_current = target.true_probability(target.clean_probabilities).item()
    for i in order:
        if len(current) == target.max_changes:
            break
        admitted = target.admissible(current, [(i, word) for word in target.substitutes[i]])
        if not admitted:
            continue
        candidates = [current | {i: word} for _, word in admitted]
        probabilities = yield candidates
        p = target.true_probability(probabilities)
        flipped = target.succeeded(probabilities)
        if flipped.any():
            return candidates[int(torch.where(flipped, p, torch.inf).argmin())]
        k = int(p.argmin())
        if p[k].item() < p_current:
            current, p_current = candidates[k], p[k].item()
    return current


class Attack(ABC):
    """Anything that attacks examples and reports one ``AttackResult`` per example, in order.

    One contract for every attack, so that ``rift attack``, ``rift bench`` and ``rift.build_attack`` build any
    registered attack (``rift.registry``) the same way: ``options_from`` reads the attack's own settings from
    ``rift attack``'s options, ``with_protocol`` adds a published protocol's constraints, and ``build`` makes the
    attack around a model."""

    name: str
    # an attack in the training adversary's own space (ASCC's embedding mix), not a discrete one: reported last and
    # marked, and no part of a published protocol
    measures_training_adversary: bool = False
    # its name in tables and model cards (default: the registered name)
    title: str | None = None
    # the substitution source it is defined with (TextAttack's PWWS: WordNet); None: the run's --synonyms
    synonyms: str | None = None
    # its own rift attack options (flags and YAML keys), a dataclass of rift.config.option fields; options_from
    # reads them from rift attack's options
    Options: type = NoOptions

    @classmethod
    @abstractmethod
    def build(cls, model, tokenizer, source, *, batch_size: int, max_length: int, **options) -> Attack:
        """The attack around ``model`` (a sequence classifier on its own device)."""

    @classmethod
    def options_from(cls, args) -> dict:
        """The keyword options of ``build`` that ``rift attack``'s options (``rift.arguments.AttackArguments``) set."""
        return {}

    @classmethod
    def with_protocol(cls, options: dict, constraints: Sequence, query_budget_per_word: float) -> dict:
        """``options`` under a published protocol's context constraints and query budget per word."""
        return options | {"constraints": tuple(constraints), "query_budget_per_word": query_budget_per_word}

    @abstractmethod
    def attack(self, examples: Sequence[Example], indices: Sequence[int] | None = None,
               on_result: Callable[[AttackResult], None] | None = None) -> list[AttackResult]:
        """Attack ``examples`` together (for batching). ``indices`` (default 0, 1, ...) name them in the results
        and seed them, so that a caller can resume a run by attacking only the examples it has no result for.
        ``on_result`` is called with each result as soon as it is final, so that a caller can save it at once."""


@dataclass
class _Run:
    """The engine's bookkeeping for one example."""

    index: int
    example: Example
    budget: int | None = None  # at most this many queries, set when the search starts (the clean query always fits)
    queries: int = 0
    asked: set[Key] = field(default_factory=set)  # inputs this example's queries were charged for
    seconds: float = 0.0
    target: Target | None = None
    search: Search | None = None
    request: list[Replacements] = field(default_factory=list)
    best: tuple[tuple[bool, float], Replacements] | None = None  # most adversarial allowed candidate scored
    result: AttackResult | None = None


class WordSubstitutionAttack(Attack):
    """The engine; a subclass supplies ``search``."""

    @classmethod
    def build(cls, model, tokenizer, source, *, batch_size: int, max_length: int, predictor=None,
              **options) -> Attack:
        return cls(ModelWrapper(model, tokenizer, batch_size=batch_size, max_length=max_length, predictor=predictor),
                   source, **options)

    @classmethod
    def options_from(cls, args) -> dict:
        options = dict(max_changed_share=args.max_changed_share, query_budget=args.query_budget, seed=args.seed)
        if args.lm_constraint:
            options["lm_constraint"] = LMConstraint()
        return options

    def __init__(
        self,
        model: ModelWrapper,
        source: SubstitutionSource,
        *,
        max_changed_share: float | None = None,
        lm_constraint: LMConstraint | None = None,
        constraints: Sequence[ContextConstraint] = (),
        query_budget: int | None = None,
        query_budget_per_word: float | None = None,
        seed: int = 0,
    ) -> None:
        if max_changed_share is not None and not 0 <= max_changed_share <= 1:
            raise RiftError(f"max changed share must be between 0 and 1, got {max_changed_share}")
        if query_budget is not None and query_budget < 1:
            raise RiftError(f"query budget must be at least 1 (the clean prediction), got {query_budget}")
        if query_budget_per_word is not None and not query_budget_per_word > 0:
            raise RiftError(f"query budget per word must be positive, got {query_budget_per_word}")
        self.model = model
        self.source = source
        self.max_changed_share = max_changed_share
        self.lm_constraint = lm_constraint
        self.constraints = tuple(constraints)
        self.query_budget = query_budget
        self.query_budget_per_word = query_budget_per_word
        self.seed = seed

    @abstractmethod
    def search(self, target: Target, rng: random.Random) -> Search:
        """Yield lists of candidates (each allowed by ``target.allows``, or a probe such as a deleted word), receive
        their class probabilities as rows, and return the chosen candidate, which must be allowed and scored."""

    def attack(self, examples: Sequence[Example], indices: Sequence[int] | None = None,
               on_result: Callable[[AttackResult], None] | None = None) -> list[AttackResult]:
        indices = list(range(len(examples))) if indices is None else list(indices)
        if len(indices) != len(examples):
            raise ValueError(f"{len(indices)} indices for {len(examples)} examples")
        self.model.clear_cache()  # an example's query count must not depend on what an earlier call scored
        runs = [_Run(index, example) for index, example in zip(indices, examples)]
        unreported = list(runs)

        def report_finished() -> None:
            nonlocal unreported
            if on_result is not None:
                for run in unreported:
                    if run.result is not None:
                        on_result(run.result)
            unreported = [run for run in unreported if run.result is None]

        clean = self._score(runs, [[(run.example.text, run.example.text_pair)] for run in runs])
        active = []
        for run, probabilities in zip(runs, clean):
            if probabilities[0].argmax() != run.example.label:
                run.result = self._result(run, {}, probabilities[0], probabilities[0], "skipped")
                continue
            self._start(run, probabilities[0])
            if run.result is None:
                active.append(run)
        report_finished()
        while active:
            scored = self._score(active, [[run.target.inputs(c) for c in run.request] for run in active])
            for run, probabilities in zip(active, scored):
                if run.budget is not None:
                    self._track_best(run, probabilities)
                if len(probabilities) < len(run.request):  # the budget ran out within this request
                    run.search.close()
                    self._finish(run, run.best[1] if run.best else {})
                else:
                    self._advance(run, probabilities)
            active = [run for run in active if run.result is None]
            report_finished()
        return [run.result for run in runs]

    def _start(self, run: _Run, clean: torch.Tensor) -> None:
        start = time.perf_counter()
        example = run.example
        alignment = align(self.model.tokenizer, example.text, example.text_pair, self.model.max_length)
        segment = len(alignment.segments) - 1  # the hypothesis of a pair, else the text
        words = alignment.segments[segment]
        strings = [w.text for w in words]
        # a word cut off by truncation cannot change the prediction: offering substitutes there wastes queries
        substitutes = [
            self.source.substitutes(strings, i) if alignment.word_tokens[segment][i] else [] for i in range(len(words))
        ]
        num_words = count_words(words)
        run.budget = self._budget(num_words)
        target = Target(example, words, substitutes, self._max_changes(num_words), clean, self.constraints)
        if self.lm_constraint is not None:
            target.substitutes = self.lm_constraint.filter(target.attacked_text, words, substitutes)
        run.target = target
        run.search = self.search(target, random.Random(f"{self.seed}:{run.index}"))
        run.seconds += time.perf_counter() - start
        self._advance(run, None)

    def _budget(self, num_words: int) -> int | None:
        """The example's query budget: the fixed one, or so many per word of the attacked text (at least 1), or the
        smaller of the two."""
        budgets = [] if self.query_budget is None else [self.query_budget]
        if self.query_budget_per_word is not None:
            budgets.append(max(1, math.floor(self.query_budget_per_word * num_words + 1e-9)))
        return min(budgets) if budgets else None

    def _max_changes(self, num_words: int) -> int:
        if self.max_changed_share is None:
            return num_words
        return math.floor(self.max_changed_share * num_words + 1e-9)  # 0.29 * 100 is 28.999... in floating point

    def _advance(self, run: _Run, probabilities: torch.Tensor | None) -> None:
        start = time.perf_counter()
        try:
            run.request = run.search.send(probabilities)
        except StopIteration as stop:
            run.seconds += time.perf_counter() - start
            self._finish(run, stop.value)
            return
        run.seconds += time.perf_counter() - start

    def _score(self, runs: list[_Run], inputs: list[list[Inputs]]) -> list[torch.Tensor]:
        """Probabilities of every run's inputs from one model call; for a run whose budget runs out, of the
        prefix that fits it. A run is charged one query for each input it has not asked for before, whether or not
        another run asked for it (the model still scores it once): an example's count does not depend on which
        examples share its batch. Model time is split between the runs by their new queries."""
        start = time.perf_counter()
        kept_keys: list[list[Key]] = []
        new_queries: list[int] = []
        for run, run_inputs in zip(runs, inputs):
            kept, new = [], 0
            for key in self.model.encode(run_inputs):
                if key not in run.asked:
                    if run.budget is not None and run.queries + new >= run.budget:
                        break
                    run.asked.add(key)
                    new += 1
                kept.append(key)
            kept_keys.append(kept)
            new_queries.append(new)
            run.queries += new
        flat = self.model.probabilities([key for kept in kept_keys for key in kept])
        elapsed = time.perf_counter() - start
        rows, offset, charged = [], 0, sum(new_queries)
        for run, kept, new in zip(runs, kept_keys, new_queries):
            rows.append(flat[offset : offset + len(kept)])
            offset += len(kept)
            run.seconds += elapsed * (new / charged if charged else 1 / len(runs))
        return rows

    def _track_best(self, run: _Run, probabilities: torch.Tensor) -> None:
        """Remember the most adversarial allowed candidate: what a search cut off by the budget ends with."""
        if len(probabilities) == 0:  # the budget ran out before this request: nothing was scored
            return
        target = run.target
        succeeded = target.succeeded(probabilities).tolist()
        true = target.true_probability(probabilities).tolist()
        for candidate, won, p in zip(run.request, succeeded, true):
            rank = (not won, p)
            if (run.best is None or rank < run.best[0]) and target.allows(candidate):
                run.best = (rank, candidate)

    def _finish(self, run: _Run, final: Replacements) -> None:
        target = run.target
        if not isinstance(final, dict) or not target.allows(final):
            raise RuntimeError(f"{self.name} search ended on a candidate the constraints forbid: {final!r}")
        probabilities = self.model.cached(self.model.encode([target.inputs(final)])[0])
        if probabilities is None:
            raise RuntimeError(f"{self.name} search ended on a candidate it never scored: {final}")
        status = "succeeded" if target.succeeded(probabilities) else "failed"
        run.result = self._result(run, final, target.clean_probabilities, probabilities, status)

    def _result(
        self, run: _Run, final: Replacements, clean: torch.Tensor, adversarial: torch.Tensor, status: str
    ) -> AttackResult:
        example = run.example
        if run.target is not None:
            words, (text, pair) = run.target.words, run.target.inputs(final)
        else:
            attacked = example.text if example.text_pair is None else example.text_pair
            words, text, pair = split_words(attacked), example.text, example.text_pair
        return AttackResult(
            index=run.index,
            label=example.label,
            status=status,
            text=example.text,
            text_pair=example.text_pair,
            adversarial_text=text,
            adversarial_text_pair=pair,
            clean_prediction=int(clean.argmax()),
            clean_probabilities=clean.tolist(),
            adversarial_prediction=int(adversarial.argmax()),
            adversarial_probabilities=adversarial.tolist(),
            changes=[WordChange(i, words[i].text, new) for i, new in sorted(final.items())],
            num_words=count_words(words),
            # the budget counts inputs, as a black-box attacker sees them; the record, the model passes they cost
            queries=run.queries * self.model.passes_per_input,
            seconds=run.seconds,
        )
