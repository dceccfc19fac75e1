"""One call that builds any registered attack (``rift.registry``) around a model."""

from __future__ import annotations

from torch import nn

from rift.arguments import AttackArguments
from rift.attacks.engine import Attack
from rift.errors import RiftError
from rift.prediction import PREDICTION_KEY, recorded_prediction
from rift.registry import Components, load
from rift.substitutions import SubstitutionSource

# every registered attack by name, each imported when first looked up
ATTACKS = Components("attack")


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
    """The attack ``name`` against ``model`` (on its own device). ``options`` go to the attack: every
    word-substitution attack takes ``max_changed_share``, ``lm_constraint``, ``constraints`` (context constraints;
    TextFooler has its own by default), ``query_budget``, ``query_budget_per_word`` and ``seed``; genetic also
    ``population`` and ``generations``; ascc ``steps``, ``learning_rate``, ``sparsity_weight``, ``objective``,
    ``max_substitutes`` and ``seed``. A model that predicts by averaging passes or by a vote over random copies
    (``rift.prediction``) is attacked through ``predictor`` (an ``AveragedPredictor`` or a ``VotePredictor``), by
    the word-substitution attacks."""
    cls = load("attack", name)
    if "predictor" not in options and recorded_prediction(model) is not None:
        raise RiftError(f"the model predicts by averaging passes or by a vote ({PREDICTION_KEY} in its config): "
                        "attack it as it predicts, build_attack(..., predictor=rift.prediction.AveragedPredictor(...) "
                        "or VotePredictor(...))")
    try:
        return cls.build(model, tokenizer, source, batch_size=batch_size, max_length=max_length, **options)
    except TypeError as error:  # an option this attack does not take
        raise RiftError(f"attack {name!r}: {error}") from None
