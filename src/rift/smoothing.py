"""The random copies of a text that randomised smoothing trains on and votes over.

- SAFER (Ye et al. 2020): every word is replaced by a uniform draw from its perturbation set
  (rift.substitutions.perturbation_sets), which holds the word itself, in the word's casing; a word with no
  substitutes stays as it is.
- RanMASK (Zeng et al. 2023): ``kept_words`` of a text's words, drawn without replacement, stay and the others
  become the tokenizer's mask token. Words here are words proper (``rift.text.words.count_words``): punctuation
  marks are neither masked nor counted, as the attacks never change them.

A copy rewrites only the words' spans, so spacing and punctuation stay as they were. Both take a numpy generator:
training draws from one the run seeds and resumes; a prediction seeds one per input shape (rift.prediction). Each
copy draws one uniform number per word position, whatever the words are, so that two texts of the same number of
words given generators in the same state get copies that differ only where the texts differ: the copies of a text
and of an attack's candidate share every copy in which the changed words are masked (RanMASK) or drawn from the
same set (SAFER), and the vote classifies each shared copy once.
"""

from __future__ import annotations

import numpy as np

from rift.substitutions.base import match_case
from rift.substitutions.perturbation_sets import PerturbationSets
from rift.text.words import PUNCTUATION, replace_words, split_words

MIN_KEPT = 2  # RanMASK's min_keep: a copy keeps at least two words (all of a shorter text)


def kept_words(num_words: int, mask_rate: float, min_kept: int = MIN_KEPT) -> int:
    """How many of ``num_words`` words a RanMASK copy keeps: RanMASK masks round(h x rate) of them (Python's
    rounding, as its reference does), keeping at least ``min_kept`` (all of a shorter text)."""
    return min(num_words, max(min_kept, num_words - round(num_words * mask_rate)))


def safer_copy(text: str, sets: PerturbationSets, rng: np.random.Generator) -> str:
    """``text`` with every word replaced by a uniform draw from its perturbation set, cased as the word was."""
    words = split_words(text)
    draws = rng.random(len(words))
    replacements = {}
    for index, word in enumerate(words):
        members = sets.choices(word.text)
        if len(members) > 1:
            # written as every member is, the word itself too: two texts whose words share a set then give the
            # same copies, as the certificate assumes ("gOOD" and "fine" both become "good" or "fine")
            replacements[index] = match_case(word.text, members[int(draws[index] * len(members))])
    return replace_words(text, words, replacements)


def masked_positions(text: str, mask_rate: float, rng: np.random.Generator) -> tuple[list, list[int]]:
    """The words of ``text`` and the positions of the words proper that a RanMASK copy masks."""
    words = split_words(text)
    proper = [index for index, word in enumerate(words) if not PUNCTUATION.fullmatch(word.text)]
    # the words with the smallest draws stay: a uniform choice of kept_words of them, fixed by position
    kept = set(np.argsort(rng.random(len(proper)), kind="stable")[:kept_words(len(proper), mask_rate)].tolist())
    return words, [position for rank, position in enumerate(proper) if rank not in kept]


def ranmask_copy(text: str, mask_rate: float, mask_token: str, rng: np.random.Generator) -> str:
    """``text`` with all but ``kept_words`` of its words proper replaced by ``mask_token``."""
    words, masked = masked_positions(text, mask_rate, rng)
    return replace_words(text, words, dict.fromkeys(masked, mask_token))
