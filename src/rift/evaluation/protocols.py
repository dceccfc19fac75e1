"""Named evaluation protocols: fixed attack settings under which robustness numbers compare with published ones.

``textdefender`` is the protocol of TextDefender (Li et al., EMNLP 2021), which published defence
comparisons use: at most 30% of the words changed, at most 50 candidates per word, Universal Sentence Encoder
similarity at least 0.840845057 in a window of 15 words (skipped for shorter texts, as TextDefender's TextAttack
constraint does), a query budget of 50 x the number of words, only texts of more than 4 words, at most 1,000
examples, and inputs of at most 128 tokens (256 for IMDB). It applies to the discrete attacks; ASCC, the training
adversary, is not part of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rift.attacks.constraints import USE_THRESHOLD, ContextConstraint, SentenceSimilarity
from rift.data import Example
from rift.errors import RiftError
from rift.text.words import count_words, split_words


@dataclass(frozen=True)
class Protocol:
    name: str
    max_changed_share: float
    max_substitutes: int
    similarity_threshold: float
    similarity_window: int
    skip_short_texts: bool
    query_budget_per_word: float
    min_words: int  # only texts of at least this many words (punctuation marks not counted) are attacked
    max_examples: int
    max_length: int
    long_text_tasks: tuple[str, ...]  # tasks whose inputs may have long_max_length tokens
    long_max_length: int

    def settings(self, task: str) -> dict:
        """What results.json records: every setting, with the maximum length that applies to ``task``."""
        settings = asdict(self)
        del settings["long_text_tasks"], settings["long_max_length"]
        return settings | {"max_length": self.max_length_for(task)}

    def max_length_for(self, task: str) -> int:
        return self.long_max_length if task in self.long_text_tasks else self.max_length

    def eligible(self, example: Example) -> bool:
        attacked = example.text if example.text_pair is None else example.text_pair
        return count_words(split_words(attacked)) >= self.min_words

    def constraints(self) -> tuple[ContextConstraint, ...]:
        return (SentenceSimilarity(self.similarity_threshold, self.similarity_window, self.skip_short_texts),)


PROTOCOLS = {
    "textdefender": Protocol(
        name="textdefender", max_changed_share=0.3, max_substitutes=50, similarity_threshold=USE_THRESHOLD,
        similarity_window=15, skip_short_texts=True, query_budget_per_word=50, min_words=5, max_examples=1000,
        max_length=128, long_text_tasks=("imdb",), long_max_length=256,
    ),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise RiftError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
