"""``ranmask``: RanMASK (Zeng et al. 2023), randomised smoothing by masking, as TextDefender (Li et al. 2021) trains
and attacks it: cross-entropy on copies of each text with ``ranmask_rate`` of its words replaced by the tokenizer's
mask token (0.9, TextDefender's), one copy per example per step. The model predicts by a vote over
``ranmask_samples`` copies masked at ``ranmask_inference_rate`` (TextDefender's wrapper: 100 copies at 0.7;
RanMASK's own code masks at one rate for both), which ``rift certify`` certifies against any replacement of up to a
radius of words. docs/METHOD_NOTES.md says where this follows the references and where it differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rift.config import option
from rift.errors import RiftError
from rift.objectives.smoothing import CopiesObjective
from rift.prediction import MaskVote
from rift.smoothing import ranmask_copy


@dataclass
class RanMASKOptions:
    ranmask_rate: float = option(0.9, "ranmask: share of the words masked in training copies", at_least=0, at_most=1)
    ranmask_inference_rate: float = option(0.7, "ranmask: share of the words masked in the copies a prediction "
                                           "votes over", at_least=0, at_most=1)
    ranmask_samples: int = option(100, "ranmask: copies voted over per prediction (attacks and rift eval)",
                                  at_least=1)


class RanMASKObjective(CopiesObjective):
    name = "ranmask"
    description = ("RanMASK: cross-entropy on copies with most words masked; predicts by a vote over masked copies, "
                   "certifiable against any change of up to a radius of words (Zeng et al. 2023)")
    Options = RanMASKOptions

    def setup(self, context) -> None:
        if context.tokenizer.mask_token is None:
            raise RiftError(f"ranmask masks words with the tokenizer's mask token, and {type(context.tokenizer).__name__}"
                            " has none; choose a model whose tokenizer has one")
        self.mask_token = context.tokenizer.mask_token
        super().setup(context)

    def copy(self, text: str, rng: np.random.Generator) -> str:
        return ranmask_copy(text, self.args.ranmask_rate, self.mask_token, rng)

    def prediction(self) -> MaskVote:
        return MaskVote(samples=self.args.ranmask_samples, mask_rate=self.args.ranmask_inference_rate,
                        seed=self.args.seed)
