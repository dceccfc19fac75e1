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

from rift.adversaries.base import AdversarialBatch, Adversary
from rift.registry import Components, load

# every registered adversary by name (rift.registry), each imported when first looked up
ADVERSARIES = Components("adversary")


def build_adversary(args) -> Adversary:
    return load("adversary", args.adversary)(args)


__all__ = ["ADVERSARIES", "AdversarialBatch", "Adversary", "build_adversary"]
