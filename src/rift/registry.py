"""Every component by kind and name, registered once: ``name -> "module:Class"``, imported on first use, so that
reading and checking options imports no model code.

The kinds are ``objective`` (``rift train --method``), ``adversary`` (``--adversary``), ``task`` (``--task``)
and ``attack`` (``rift attack --attack``). A component of one's own is one module with one class, and one line:

    rift.registry.register("objective", "my-method", "my_package.my_module:MyObjective")

after which every command, the API and ``RobustTrainer`` accept the name.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from rift.errors import RiftError

_COMPONENTS: dict[str, dict[str, str]] = {
    "objective": {
        "standard": "rift.objectives.standard:StandardObjective",
        "ascc": "rift.objectives.adversarial:ASCCObjective",
        "rift": "rift.objectives.rift:RIFTObjective",
        "rift-uncond": "rift.objectives.rift:UnconditionalRIFTObjective",
        "rift-clean": "rift.objectives.rift:CleanRIFTObjective",
        "l2sp": "rift.objectives.adversarial:L2SPObjective",
        "mixout": "rift.objectives.adversarial:MixoutObjective",
        "pgd": "rift.objectives.pgd:PGDObjective",
        "freelb": "rift.objectives.freelb:FreeLBObjective",
        "freelb++": "rift.objectives.freelb:FreeLBPlusPlusObjective",
        "infobert": "rift.objectives.infobert:InfoBERTObjective",
        "a2t": "rift.objectives.a2t:A2TObjective",
        "dne": "rift.objectives.dne:DNEObjective",
        "safer": "rift.objectives.safer:SAFERObjective",
        "ranmask": "rift.objectives.ranmask:RanMASKObjective",
    },
    "adversary": {
        "ascc": "rift.adversaries.ascc:TokenASCCAdversary",
        "discrete": "rift.adversaries.discrete:DiscreteAdversary",
        "random": "rift.adversaries.random_substitution:RandomAdversary",
        "word-ascc": "rift.adversaries.word_ascc:WordASCCAdversary",
        "a2t": "rift.adversaries.a2t:A2TAdversary",
    },
    "task": {
        "sst2": "rift.data.tasks.sst2:SST2",
        "imdb": "rift.data.tasks.imdb:IMDB",
        "mr": "rift.data.tasks.mr:MR",
        "snli": "rift.data.tasks.snli:SNLI",
        "agnews": "rift.data.tasks.agnews:AGNews",
        "file": "rift.data.tasks.file:FileTask",
    },
    "attack": {
        "ascc": "rift.attacks.ascc:ASCCAttack",
        "pwws": "rift.attacks.pwws:PWWS",
        "pwws-wordnet": "rift.attacks.pwws:WordNetPWWS",
        "genetic": "rift.attacks.genetic:Genetic",
        "textfooler": "rift.attacks.textfooler:TextFooler",
    },
}


def register(kind: str, name: str, target: str) -> None:
    """Make ``target`` (``"module:Class"``) the component ``name`` of ``kind``; a name already taken is refused."""
    if kind not in _COMPONENTS:
        raise RiftError(f"unknown kind of component {kind!r}; the kinds are {', '.join(_COMPONENTS)}")
    if ":" not in target:
        raise RiftError(f"register {kind} {name!r}: give the class as 'module:Class', got {target!r}")
    if _COMPONENTS[kind].get(name, target) != target:
        raise RiftError(f"a {kind} named {name!r} is registered already ({_COMPONENTS[kind][name]})")
    _COMPONENTS[kind][name] = target


def registered() -> dict[str, dict[str, str]]:
    """Every component by kind and name, as ``register`` takes them (for a process that must register them again)."""
    return {kind: dict(entries) for kind, entries in _COMPONENTS.items()}


def names(kind: str) -> tuple[str, ...]:
    """The registered names of ``kind``, in registration order."""
    return tuple(_COMPONENTS[kind])


def load(kind: str, name: str) -> type:
    """The class registered as ``name`` (imported now); an unknown name is a one-line ``RiftError``."""
    try:
        module, _, attribute = _COMPONENTS[kind][name].partition(":")
    except KeyError:
        raise RiftError(f"unknown {kind} {name!r}; choose from {', '.join(names(kind))}") from None
    return getattr(importlib.import_module(module), attribute)


class Components(Mapping):
    """The registered classes of one kind as a read-only mapping, each imported when first looked up."""

    def __init__(self, kind: str):
        self.kind = kind

    def __getitem__(self, name: str) -> type:
        if name not in _COMPONENTS[self.kind]:
            raise KeyError(name)
        return load(self.kind, name)

    def __iter__(self) -> Iterator[str]:
        return iter(names(self.kind))

    def __len__(self) -> int:
        return len(_COMPONENTS[self.kind])
