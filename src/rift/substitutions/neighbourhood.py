"""A word's neighbourhood of two hops: its substitutes, then the substitutes of those (DNE's convex hull, Zhou et
al. 2021), the word itself and repeats left out, at most ``max_neighbours`` in all."""

from __future__ import annotations

from collections.abc import Sequence

from rift.substitutions.base import SubstitutionSource, lookup_key


class NeighbourhoodSource(SubstitutionSource):
    def __init__(self, base: SubstitutionSource, max_neighbours: int) -> None:
        self.base = base
        self.name = base.name
        self.max_neighbours = max_neighbours
        self._last: tuple[tuple[tuple[str, ...], int], list[tuple[str, int]]] | None = None

    def neighbourhood(self, words: Sequence[str], position: int) -> list[tuple[str, int]]:
        """(substitute, hop) pairs: the base source's substitutes (hop 1), then, for each in turn, its own
        substitutes in the same context (hop 2). The last answer is kept: ``substitutes`` and ``hops`` of one
        word are asked one after the other."""
        key = (tuple(words), position)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._neighbourhood(words, position))
        return self._last[1]

    def _neighbourhood(self, words: Sequence[str], position: int) -> list[tuple[str, int]]:
        first = self.base.substitutes(words, position)
        seen = {lookup_key(words[position])} | {lookup_key(word) for word in first}
        found = [(word, 1) for word in first]
        for word in first:
            in_place = [*words[:position], word, *words[position + 1:]]
            for second in self.base.substitutes(in_place, position):
                if lookup_key(second) not in seen:
                    seen.add(lookup_key(second))
                    found.append((second, 2))
        return found[:self.max_neighbours]

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return [word for word, _ in self.neighbourhood(words, position)]

    def hops(self, words: Sequence[str], position: int) -> list[int]:
        return [hop for _, hop in self.neighbourhood(words, position)]
