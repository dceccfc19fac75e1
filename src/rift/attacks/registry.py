"""The word-substitution attacks by name, and one call that builds one around a model."""

from __future__ import annotations

from torch import nn

from rift.arguments import AttackArguments
from rift.attacks.engine import Attack, WordSubstitutionAttack
from rift.attacks.genetic import Genetic
from rift.attacks.pwws import PWWS
from rift.attacks.textfooler import TextFooler
from rift.attacks.wrapper import ModelWrapper
from rift.errors import RiftError
from rift.substitutions import SubstitutionSource

ATTACKS: dict[str, type[WordSubstitutionAttack]] = {"pwws": PWWS, "genetic": Genetic, "textfooler": TextFooler}


def build_attack(
    name: str,
    model: nn.Module,
    tokenizer,
    source: SubstitutionSource,
    *,
    batch_size: int = AttackArguments.batch_size,
    max_length: int = AttackArguments.max_length,
    **options,
) -> Attack:
    """The attack ``name`` against ``model`` (on its own device). ``options`` go to the attack: every attack takes
    ``max_changed_share``, ``lm_constraint``, ``constraints`` (context constraints; TextFooler has its own by
    default), ``query_budget``, ``query_budget_per_word`` and ``seed``; genetic also ``population`` and
    ``generations``."""
    if name not in ATTACKS:
        raise RiftError(f"unknown attack {name!r}: use one of {', '.join(ATTACKS)}")
    wrapper = ModelWrapper(model, tokenizer, batch_size=batch_size, max_length=max_length)
    try:
        return ATTACKS[name](wrapper, source, **options)
    except TypeError as error:  # an option this attack does not take
        raise RiftError(f"attack {name!r}: {error}") from None
