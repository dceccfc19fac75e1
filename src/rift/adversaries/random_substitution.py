"""``random``: random allowed substitutions, the data-augmentation baseline of Jia et al. (2019).

Every word of the attacked text that has substitutes becomes a word drawn uniformly from itself and its
substitutes (so about K / (K + 1) of those words change). The draw is seeded by the run's seed, the optimiser step
and the example, so a resumed run draws what an uninterrupted one would, and every epoch draws afresh.
"""

from __future__ import annotations

import random

import torch

from rift.adversaries.base import WordAdversary, clean_logits, word_surface
from rift.data import Example
from rift.text.words import replace_words


class RandomAdversary(WordAdversary):
    name = "random"
    description = "random allowed word substitutions (data augmentation)"

    def adversarial_examples(self, model, batch) -> tuple[list[Example], torch.Tensor]:
        step = self.context.current_step()
        examples = []
        for index in batch["index"].tolist():
            example, alignment = self.examples[index], self.alignments[index]
            rng = random.Random(f"{self.args.seed}:{step}:{index}")
            replacements = {i: rng.choice(found) for i, found in enumerate(word_surface(alignment, self.source))
                            if found and rng.randrange(len(found) + 1)}  # 0: keep the word itself
            words = alignment.segments[-1]
            if example.text_pair is None:
                examples.append(Example(replace_words(example.text, words, replacements), example.label))
            else:
                examples.append(Example(example.text, example.label,
                                        replace_words(example.text_pair, words, replacements)))
        return examples, clean_logits(model, batch)
