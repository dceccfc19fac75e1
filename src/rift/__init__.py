"""rift: Robust Informative Fine-Tuning of pre-trained encoders, and honest robustness evaluation.

What the commands do, as functions (``rift.api``); each takes the command's options object or the same options as
keyword arguments, checks them as the command line does, and returns a typed result:

- ``rift.train(...) -> TrainResult``: fine-tune (``method="standard" | "ascc" | "rift" | ...``), as ``rift train``;
- ``rift.attack(...) -> AttackReport``: PWWS, genetic, TextFooler, ASCC on a checkpoint, as ``rift attack``;
- ``rift.evaluate(...) -> EvalResult``: clean accuracy on a split, as ``rift eval``;
- ``rift.certify(...) -> dict``: certified accuracy of a smoothed classifier (safer, ranmask), as ``rift certify``.

Inside an existing Hugging Face script: ``rift.RobustTrainer``, a ``transformers.Trainer`` that trains with any rift
objective and adversary.

The building blocks, to compose by hand: ``load_classifier`` and ``load_tokenizer`` (a model), ``load_task``
(data), ``build_substitution_source`` (the allowed word substitutions), ``build_attack`` (an attack),
``build_adversary`` (a training adversary), ``build_objective`` (a training objective), and the options objects
``TrainingArguments``, ``AttackArguments``, ``EvalArguments``, ``BenchArguments``; ``PRESETS`` holds the named
hyper-parameter sets. Every error rift detects in its input is a ``RiftError`` with a one-line message.

    import rift

    trained = rift.train(method="rift", task="sst2", max_train_examples=2000, epochs=1, output_dir="runs/rift")
    attacked = rift.attack(model=str(trained.output_dir), attack=["pwws"], num_examples=100,
                           output_dir="runs/rift-attacks")
    print(trained.test_accuracy, attacked.attacks["pwws"].robust_accuracy)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module; imported on first use, so that ``import rift`` (and ``rift --help``) loads no model code
_EXPORTS = {
    "train": "rift.api", "attack": "rift.api", "evaluate": "rift.api", "certify": "rift.api",
    "TrainResult": "rift.api", "AttackReport": "rift.api", "AttackSummary": "rift.api", "EvalResult": "rift.api",
    "TrainingArguments": "rift.arguments", "AttackArguments": "rift.arguments", "EvalArguments": "rift.arguments",
    "BenchArguments": "rift.arguments", "CertifyArguments": "rift.arguments",
    "RobustTrainer": "rift.training.hf_trainer",
    "load_classifier": "rift.models", "load_tokenizer": "rift.models",
    "load_task": "rift.data",
    "build_substitution_source": "rift.substitutions",
    "build_attack": "rift.attacks.registry",
    "build_adversary": "rift.adversaries",
    "build_objective": "rift.objectives",
    "PRESETS": "rift.presets",
    "RiftError": "rift.errors",
    "registry": "rift.registry",  # the module itself: rift.registry.register(kind, name, "module:Class")
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rift' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if module.__name__ == f"rift.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
