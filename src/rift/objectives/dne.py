"""``dne``: Dirichlet Neighbourhood Ensemble (Zhou et al., ACL 2021), as TextDefender (Li et al. 2021) trains and
attacks it, over whole words (``rift.mixing``, as the ``word-ascc`` adversary mixes them).

Each word with substitutes is replaced by a convex combination of its neighbourhood: itself, its substitutes (hop
1) and their substitutes (hop 2), at most ``dne_neighbours`` besides itself (``NeighbourhoodSource``). Per batch:

1. convex weights are drawn per word from Dirichlet(alpha for the word and hop 1, alpha x decay for hop 2), and the
   model is trained on the cross-entropy of that mix;
2. ``dne_steps`` times, the weights' logits (log p) move by ``dne_step_size`` along their gradient, normalised to
   L2 norm 1 per word over its candidates, and the model is trained on the cross-entropy of each new mix.

The loss is CE_0 + ``dne_adversarial_weight`` x (CE_1 + ... + CE_K): TextDefender's K + 1 backward passes, each of
weight 1 (the original code divides the ascent's terms by K). The model then predicts as TextDefender attacks it:
the mean of the L2-normalised logits of ``dne_samples`` passes over Dirichlet draws (``rift.prediction``), which
its checkpoint records. docs/METHOD_NOTES.md says where this follows the references and where it differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift.adversaries.base import SubstitutionOptions
from rift.config import option
from rift.data import resolve_data_dir
from rift.data.batching import EncodedExample
from rift.mixing import collate_layouts, layouts_coverage, mixed_inputs, position_table, widest_row, word_layout
from rift.models import classify, input_embeddings
from rift.objectives.base import Objective
from rift.prediction import HullAverage, concentrations, record_prediction, sample_weights
from rift.substitutions import build_substitution_source
from rift.substitutions.neighbourhood import NeighbourhoodSource


@dataclass
class DNEOptions(SubstitutionOptions):
    dne_alpha: float = option(1.0, "dne: Dirichlet concentration of a word and its substitutes", above=0)
    dne_decay: float = option(0.5, "dne: factor of the concentration for the substitutes of substitutes", above=0)
    dne_neighbours: int = option(50, "dne: a word's neighbourhood besides itself, at most (substitutes, then theirs)",
                                 at_least=1)
    dne_steps: int = option(3, "dne: ascent steps on the convex weights' logits", at_least=0)
    dne_step_size: float = option(10.0, "dne: size of each ascent step, along the gradient normalised per word",
                                  above=0)
    dne_adversarial_weight: float = option(1.0, "dne: weight of each ascent step's cross-entropy", at_least=0)
    dne_samples: int = option(12, "dne: Dirichlet draws averaged per prediction (attacks and rift eval)", at_least=1)


class DNEObjective(Objective):
    name = "dne"
    description = ("DNE: cross-entropy on Dirichlet-weighted convex combinations of each word's two-hop neighbourhood "
                   "and on those weights moved by gradient ascent; predicts by averaging sampled passes (Zhou et al. "
                   "2021)")
    Options = DNEOptions

    def setup(self, context) -> None:
        args = self.args
        model = context.model
        position_table(model)  # fails early, with the reason, for a model it cannot mix
        source = build_substitution_source(args.synonyms, resolve_data_dir(args.data_dir),
                                           max_substitutes=args.max_substitutes)
        self.source = NeighbourhoodSource(source, args.dne_neighbours)
        self.layouts = {item.index: word_layout(item.alignment, context.tokenizer, self.source, args.max_length)
                        for item in context.train_items}
        coverage = layouts_coverage(list(self.layouts.values()))
        context.log("dne: the neighbourhoods hold {substitutions_represented} of the {substitutions} (word, neighbour) "
                    "pairs of the training split ({share_substitutions:.1%}), at {words_represented} of "
                    "{words_with_substitutes} words with neighbours".format(**coverage))
        record_prediction(model, HullAverage(samples=args.dne_samples, alpha=args.dne_alpha, decay=args.dne_decay,
                                             neighbours=args.dne_neighbours, synonyms=args.synonyms,
                                             max_substitutes=args.max_substitutes, seed=args.seed))

    def collate(self, items: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(items, pad_token_id)
        layouts = [self.layouts[item.index] for item in items]
        # as many candidate slots as the batch's largest neighbourhood needs: the mix's cost grows with them
        return batch | collate_layouts(layouts, batch.get("token_type_ids"), widest_row(layouts))

    def mixed_loss(self, model, embedded: torch.Tensor, batch, weights: torch.Tensor) -> torch.Tensor:
        # the model's own position table, looked up each time: kept on the objective, it would become one of the
        # objective's parameters (a second, separately optimised copy in the trainer's eyes)
        inputs = mixed_inputs(embedded, *position_table(model), batch, weights)
        return F.cross_entropy(classify(model, **inputs).logits.float(), batch["labels"])

    def loss(self, model, batch) -> dict[str, torch.Tensor]:
        args = self.args
        mask = batch["mix_row_mask"]
        # recomputed with gradients, so that every pass trains the embedding matrix
        embedded = input_embeddings(model)(batch["mix_ids"])
        weights = sample_weights(concentrations(batch["mix_hops"], mask, args.dne_alpha, args.dne_decay))
        # the references mix softmax(log(p + 1e-6)), p the draw, and ascend on those logits
        logits = (weights + 1e-6).log().masked_fill(~mask, float("-inf")).requires_grad_(True)
        losses = [self.mixed_loss(model, embedded, batch, logits.softmax(-1))]
        for _ in range(args.dne_steps):
            (gradient,) = torch.autograd.grad(losses[-1], logits, retain_graph=True)
            step = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)  # per word, over its candidates
            logits = (logits.detach() + args.dne_step_size * step).requires_grad_(True)
            losses.append(self.mixed_loss(model, embedded, batch, logits.softmax(-1)))
        ascent = args.dne_adversarial_weight * (torch.stack(losses[1:]).sum() if args.dne_steps else 0 * losses[0])
        return {"loss": losses[0] + ascent, "sampled_ce": losses[0], "ascent_ce": ascent}
