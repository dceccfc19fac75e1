"""SAFER's perturbation sets (Ye et al. 2020): the words a smoothed classifier may put in each word's place.

SAFER's smoothing draws each word of a copy uniformly from the word's perturbation set P(x). Its certificate needs,
for every substitute w that an attacker may put in x's place, how far apart the copies of x and of w lie: uniform
draws from P(x) and from P(w) differ in total variation by 1 - |P(x) ∩ P(w)| / max(|P(x)|, |P(w)|).

SAFER builds the sets from the graph of substitutes: a connected part of at most ``size`` words is one set that all
its words share (overlap 1, so an attacker moving within it changes nothing the smoothing sees); in a larger part,
each word's set is the ``size`` words most similar to it. rift builds them from a substitution source (the
training's ``--synonyms``), queried one word at a time, and, as the source keeps no similarities, reads "most
similar" as "nearest in the graph": the first ``size`` words of a breadth-first walk over substitutes from the
word, in the source's order, the word itself first. Where every word of a part lists the others it is reached by,
the walk covers the part whole and gives SAFER's shared set; the source's one-way entries and its stop words (which
get no substitutes) make some small sets differ from their neighbours', so the certificate computes every overlap
rather than assume 1.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rift.errors import RiftError
from rift.substitutions.base import SubstitutionSource, lookup_key

SAFER_SET_SIZE = 100  # SAFER's perturbation_constraint


class PerturbationSets:
    """Each word's perturbation set, as lower-cased lookup keys, built on first use and kept."""

    def __init__(self, source: SubstitutionSource, size: int = SAFER_SET_SIZE) -> None:
        if size < 1:
            raise RiftError(f"a perturbation set holds at least the word itself: size must be 1 or more, got {size}")
        self.source, self.size = source, size
        self._sets: dict[str, tuple[str, ...]] = {}
        self._choices: dict[str, tuple[str, ...]] = {}

    def _substitutes(self, key: str) -> list[str]:
        return [lookup_key(word) for word in self.source.substitutes([key], 0)]

    def members(self, word: str) -> tuple[str, ...]:
        """P(word): the word itself first, then the nearest words reachable through substitutes, ``size`` at most."""
        key = lookup_key(word)
        if key not in self._sets:
            found, queue = [key], deque([key])
            seen = {key}
            while queue and len(found) < self.size:
                for neighbour in self._substitutes(queue.popleft()):
                    if neighbour not in seen:
                        seen.add(neighbour)
                        found.append(neighbour)
                        queue.append(neighbour)
                        if len(found) == self.size:
                            break
            self._sets[key] = tuple(found)
        return self._sets[key]

    def choices(self, word: str) -> tuple[str, ...]:
        """P(word) in alphabetical order: words that share a set list it alike, so that one uniform number draws the
        same member for each of them (the vote's common random numbers, rift.smoothing)."""
        key = lookup_key(word)
        if key not in self._choices:
            self._choices[key] = tuple(sorted(self.members(key)))
        return self._choices[key]

    def overlap(self, word: str, substitute: str) -> float:
        """1 minus the total-variation distance between uniform draws from P(word) and from P(substitute)."""
        a, b = self.members(word), self.members(substitute)
        return len(set(a) & set(b)) / max(len(a), len(b))

    def position_overlap(self, words: Sequence[str], position: int, attacks: SubstitutionSource | None = None) -> float:
        """The smallest overlap any substitute of ``words[position]`` leaves, among those ``attacks`` (the attacks'
        source, by default the sets' own) offers in context: the attacker's best move at that position; 1 where it
        has none. A substitute outside the sets' graph has a set of its own and may overlap nothing."""
        source = attacks or self.source
        return min((self.overlap(words[position], w) for w in source.substitutes(words, position)), default=1.0)
