"""The genetic attack of Alzantot et al. (2018) as modified by Jia et al. (2019) and used to evaluate RIFT."""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass

import torch

from rift.attacks.engine import Replacements, Search, Target, WordSubstitutionAttack
from rift.attacks.wrapper import ModelWrapper
from rift.config import option
from rift.errors import RiftError
from rift.substitutions import SubstitutionSource

CROSSOVER_TRIES = 20  # as TextAttack: redraw a child that breaks the change limit, then fall back to a parent


@dataclass
class GeneticOptions:
    population: int = option(60, "genetic: population size", at_least=2)
    generations: int = option(40, "genetic: generations (0 = the first population only)", at_least=0)


class Genetic(WordSubstitutionAttack):
    """Perturb(x): at a random position that has substitutes, try the original word and every substitute there and
    keep the one that lowers p(y) most (as in the authors' code, a member may keep or restore an original word).
    The first population is ``population`` perturbations of x. Each generation keeps its best member and adds
    children: two parents drawn with probability proportional to fitness 1 - p(y) (uniformly if all are 0),
    each word taken from either parent at random, then perturbed. The search stops as soon as a member is
    misclassified. All perturbations of a generation are scored in one request.

    Under a change limit a member at the limit is perturbed only at a position it already changed.
    """

    name = "genetic"
    Options = GeneticOptions

    @classmethod
    def options_from(cls, args) -> dict:
        return super().options_from(args) | dict(population=args.population, generations=args.generations)

    def __init__(
        self, model: ModelWrapper, source: SubstitutionSource, *, population: int = 60, generations: int = 40, **options
    ) -> None:
        super().__init__(model, source, **options)
        if population < 2 or generations < 0:
            raise RiftError(
                f"population must be at least 2 and generations at least 0, got {population} and {generations}"
            )
        self.population = population
        self.generations = generations

    def search(self, target: Target, rng: random.Random) -> Search:
        if not target.positions or target.max_changes == 0:
            return {}
        members, probabilities = yield from self._perturb(target, [{}] * self.population, rng)
        for _ in range(self.generations):
            if target.succeeded(probabilities).any():
                break
            elite = _most_adversarial(target, probabilities)
            fitness = (1 - target.true_probability(probabilities)).tolist()
            weights = fitness if sum(fitness) > 0 else None
            children = []
            for _ in range(self.population - 1):
                first, second = rng.choices(range(len(members)), weights=weights, k=2)
                children.append(self._crossover(members[first], members[second], target, rng))
            children, child_probabilities = yield from self._perturb(target, children, rng)
            members = [members[elite], *children]
            probabilities = torch.cat([probabilities[elite : elite + 1], child_probabilities])
        return members[_most_adversarial(target, probabilities)]

    @staticmethod
    def _perturb(
        target: Target, members: list[Replacements], rng: random.Random
    ) -> Generator[list[Replacements], torch.Tensor, tuple[list[Replacements], torch.Tensor]]:
        """Each member perturbed once, with the class probabilities of the results; one request for all."""
        requests, sizes = [], []
        for member in members:
            # at the change limit only a position already changed may change again
            allowed = target.positions if len(member) < target.max_changes else sorted(member)
            i = rng.choice(allowed)
            # the original word is a candidate too, as in the authors' code: a member may keep or restore it
            kept = {k: word for k, word in member.items() if k != i}
            admitted = target.admissible(kept, [(i, word) for word in target.substitutes[i]])
            candidates = [kept, *(kept | {i: word} for _, word in admitted)]
            requests += candidates
            sizes.append(len(candidates))
        probabilities = yield requests
        chosen, rows, offset = [], [], 0
        for size in sizes:
            block = probabilities[offset : offset + size]
            k = int(target.true_probability(block).argmin())
            chosen.append(requests[offset + k])
            rows.append(block[k])
            offset += size
        return chosen, torch.stack(rows)

    @staticmethod
    def _crossover(first: Replacements, second: Replacements, target: Target, rng: random.Random) -> Replacements:
        """Each word from either parent at random."""
        positions = sorted(first.keys() | second.keys())
        for _ in range(CROSSOVER_TRIES):
            child = {}
            for i in positions:
                word = (first if rng.random() < 0.5 else second).get(i)
                if word is not None:
                    child[i] = word
            if len(child) <= target.max_changes:
                return child
        return first


def _most_adversarial(target: Target, probabilities: torch.Tensor) -> int:
    """The row that is misclassified with the lowest p(y), else the one with the lowest p(y)."""
    p = target.true_probability(probabilities)
    return int((p + 2 * (~target.succeeded(probabilities)).float()).argmin())
