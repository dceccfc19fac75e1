"""Training adversaries, selected with ``rift train --adversary NAME``: what x' an adversarial objective trains on.

- ``ascc``: the paper's token-level convex combination of substitute embeddings (single-token words and
  substitutes only);
- ``discrete``: a budgeted, gradient-guided word-level search through the attack engine; x' is a real text;
- ``random``: random allowed substitutions (data augmentation, Jia et al. 2019);
- ``word-ascc``: ASCC's convex combination over whole words and substitutes of any number of pieces, exact at every
  vertex (docs/METHOD_NOTES.md, "A whole-word convex combination").

``rift.adversaries.base`` holds the contract.
"""

from __future__ import annotations

from rift.adversaries.ascc import TokenASCCAdversary
from rift.adversaries.base import AdversarialBatch, Adversary
from rift.adversaries.discrete import DiscreteAdversary
from rift.adversaries.random_substitution import RandomAdversary
from rift.adversaries.word_ascc import WordASCCAdversary
from rift.errors import RiftError

ADVERSARIES: dict[str, type[Adversary]] = {
    cls.name: cls for cls in (TokenASCCAdversary, DiscreteAdversary, RandomAdversary, WordASCCAdversary)
}


def build_adversary(args) -> Adversary:
    try:
        cls = ADVERSARIES[args.adversary]
    except KeyError:
        raise RiftError(f"unknown adversary {args.adversary!r}; choose from {', '.join(ADVERSARIES)}") from None
    return cls(args)


__all__ = ["ADVERSARIES", "AdversarialBatch", "Adversary", "build_adversary"]
