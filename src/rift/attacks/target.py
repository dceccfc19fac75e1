"""What a search attacks: one correctly classified example, its allowed substitutes, and the goal (TextAttack's
goal function and pre-transformation constraints), with the interface of the constraints that judge a substitution
in its context (``rift.attacks.constraints``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rift.attacks.wrapper import Inputs
from rift.data import Example
from rift.text.words import Word, replace_words

Replacements = dict[int, str]  # word position -> new word; the empty dict is the original text
Substitution = tuple[int, str]  # (word position, new word), made on top of a reference


class ContextConstraint(ABC):
    """Decides which substitutions, each added alone to a reference, are admissible."""

    name: str

    @abstractmethod
    def admits(self, target: Target, reference: Replacements, substitutions: Sequence[Substitution]) -> list[bool]:
        """One verdict per substitution."""

    def settings(self) -> dict:
        """What results.json records of the constraint."""
        return {"name": self.name}



@dataclass
class Target:
    """One correctly classified example as a search sees it."""

    example: Example
    words: list[Word]  # words of the attacked text: the hypothesis of a pair, else the text
    substitutes: list[list[str]]  # per word, the substitutes every constraint on single words allows
    max_changes: int
    clean_probabilities: torch.Tensor
    constraints: Sequence[ContextConstraint] = ()

    @property
    def attacked_text(self) -> str:
        return self.example.text if self.example.text_pair is None else self.example.text_pair

    @property
    def positions(self) -> list[int]:
        """Words that have at least one allowed substitute."""
        return [i for i, found in enumerate(self.substitutes) if found]

    def inputs(self, replacements: Replacements) -> Inputs:
        """The model input with ``replacements`` applied (to the hypothesis only, for a pair)."""
        changed = replace_words(self.attacked_text, self.words, replacements)
        return (changed, None) if self.example.text_pair is None else (self.example.text, changed)

    def allows(self, replacements: Replacements) -> bool:
        """Whether a candidate satisfies every constraint: allowed substitutes, not too many changes."""
        return len(replacements) <= self.max_changes and all(
            0 <= i < len(self.substitutes) and new in self.substitutes[i] for i, new in replacements.items()
        )

    def admissible(self, reference: Replacements, substitutions: Sequence[Substitution]) -> list[Substitution]:
        """The substitutions that every context constraint admits, each made alone on top of ``reference``."""
        kept = list(substitutions)
        for constraint in self.constraints:
            kept = [s for s, ok in zip(kept, constraint.admits(self, reference, kept)) if ok]
        return kept

    def true_probability(self, probabilities: torch.Tensor) -> torch.Tensor:
        """p(y) of each row: what the searches lower."""
        return probabilities[..., self.example.label]

    def succeeded(self, probabilities: torch.Tensor) -> torch.Tensor:
        """The goal, per row: the prediction is no longer the label."""
        return probabilities.argmax(-1) != self.example.label
