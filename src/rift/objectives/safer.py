"""``safer``: SAFER (Ye, Gong and Liu, ACL 2020), randomised smoothing over word substitutions, as its reference
(lushleaf/Structure-free-certified-NLP) and TextDefender (Li et al. 2021) train it: cross-entropy on copies of each
text in which every word is a uniform draw from its perturbation set (``rift.substitutions.perturbation_sets``,
built from the same substitution source the attacks use), one copy per example per step. The model predicts by a
vote over ``safer_samples`` copies (TextDefender attacks it through 100), which ``rift certify`` certifies against
every substitution the source allows. docs/METHOD_NOTES.md says where this follows the references and where it
differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rift.adversaries.base import SubstitutionOptions
from rift.config import option
from rift.data import resolve_data_dir
from rift.objectives.smoothing import CopiesObjective
from rift.prediction import SubstitutionVote
from rift.smoothing import safer_copy
from rift.substitutions import build_substitution_source
from rift.substitutions.perturbation_sets import SAFER_SET_SIZE, PerturbationSets


@dataclass
class SAFEROptions(SubstitutionOptions):
    safer_set_size: int = option(SAFER_SET_SIZE, "safer: words per perturbation set, at most (SAFER's 100)",
                                 at_least=1)
    safer_samples: int = option(100, "safer: copies voted over per prediction (attacks and rift eval)", at_least=1)


class SAFERObjective(CopiesObjective):
    name = "safer"
    description = ("SAFER: cross-entropy on copies with every word drawn from its perturbation set; predicts by a "
                   "vote over such copies, certifiable against word substitutions (Ye et al. 2020)")
    Options = SAFEROptions

    def setup(self, context) -> None:
        source = build_substitution_source(self.args.synonyms, resolve_data_dir(self.args.data_dir),
                                           max_substitutes=self.args.max_substitutes)
        self.sets = PerturbationSets(source, self.args.safer_set_size)
        super().setup(context)

    def copy(self, text: str, rng: np.random.Generator) -> str:
        return safer_copy(text, self.sets, rng)

    def prediction(self) -> SubstitutionVote:
        args = self.args
        return SubstitutionVote(samples=args.safer_samples, set_size=args.safer_set_size, synonyms=args.synonyms,
                                max_substitutes=args.max_substitutes, seed=args.seed)
