"""Where attacks win: which changes of an attack the attacked model's own training adversary could have made.

A checkpoint that rift trained keeps its configuration (``rift_config.yaml``): its method, adversary, substitution
source and K. From it the adversary is rebuilt (without training anything) and asked, for every change of every
result, whether its x' could hold that substitute at that word (``Adversary.can_produce``). The token-level ASCC
cannot hold a word of several pieces or a substitute of several pieces; the word adversaries hold every
substitute of the source they trained with. Changes made with another source than the training's (WordNet
against a model trained on counter-fitted neighbours) count as outside when the training source lacks them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rift.adversaries import ADVERSARIES, Adversary
from rift.attacks.results import AttackResult
from rift.config import build_config
from rift.errors import RiftError
from rift.run_folder import CONFIG_FILE
from rift.objectives import OBJECTIVES
from rift.presets import PRESETS
from rift.text.words import align



def training_adversary(model_dir: str, tokenizer, data_dir: str | None) -> Adversary | None:
    """The adversary the checkpoint in ``model_dir`` was trained against, bound to ``tokenizer``; None for a model
    that rift did not train, or trained without an adversary. ``data_dir`` is where its source is read now."""
    from rift.arguments import TrainingArguments

    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        # the run's output folder is where it was trained, maybe elsewhere: not checked
        args = build_config(TrainingArguments, {"config": str(path), "data_dir": data_dir}, PRESETS, check_paths=False,
                            unread="drop")
    except RiftError:  # a configuration this version cannot read: the surface stays unknown
        return None
    objective = OBJECTIVES[args.method] if args.method in OBJECTIVES else None
    name = objective and (objective.own_adversary or (args.adversary if objective.uses_adversary else None))
    if not name:
        return None
    adversary = ADVERSARIES[name](args)
    adversary.bind(tokenizer)
    return adversary


def mark_training_surface(result: AttackResult, adversary: Adversary, max_length: int) -> None:
    """Sets ``in_training_surface`` on every change of ``result``, in place."""
    if not result.changes:
        return
    alignment = align(adversary.tokenizer, result.text, result.text_pair, max_length)
    result.changes = [replace(c, in_training_surface=adversary.can_produce(alignment, c.position, c.new))
                      for c in result.changes]
