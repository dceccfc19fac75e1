"""Training adversaries, selected with ``rift train --adversary NAME``: what x' an adversarial objective trains on.

- ``ascc``: the paper's token-level convex combination of substitute embeddings (single-token words and
  substitutes only);
- ``discrete``: a budgeted, gradient-guided word-level search through the attack engine; x' is a real text;
- ``random``: random allowed substitutions (data augmentation, Jia et al. 2019).

``rift.adversaries.base`` holds the contract. Why there is no whole-word embedding-space adversary yet:
docs/METHOD_NOTES.md, "A whole-word convex combination".
"""

from __future__ import annotations

from rift.adversaries.ascc import TokenASCCAdversary
from rift.adversaries.base import AdversarialBatch, Adversary
from rift.adversaries.discrete import DiscreteAdversary
from rift.adversaries.random_substitution import RandomAdversary
from rift.errors import RiftError

ADVERSARIES: dict[str, type[Adversary]] = {
    cls.name: cls for cls in (TokenASCCAdversary, DiscreteAdversary, RandomAdversary)
}


def build_adversary(args) -> Adversary:
    try:
        cls = ADVERSARIES[args.adversary]
    except KeyError:
        raise RiftError(f"unknown adversary {args.adversary!r}; choose from {', '.join(ADVERSARIES)}") from None
    return cls(args)


__all__ = ["ADVERSARIES", "AdversarialBatch", "Adversary", "build_adversary"]
