"""TextFooler's context constraints (part of speech, sentence similarity) on known cases, alone and inside the attack.

The tagger (spaCy's en_core_web_sm) and the encoder (USE multilingual v3) are the real ones. In the 21-word review
below, "bad" may become "terrible" (an adjective, similarity 0.95), not "badly" (an adverb, though similar: 0.95) and
not "vegetarian" (an adjective, but similarity 0.80 < 0.8408).
"""

from __future__ import annotations

import pytest
import torch
from test_attacks import BagOfWords, DictSource

from rift.attacks.constraints import USE_THRESHOLD, PartOfSpeechMatch, SentenceSimilarity, _window
from rift.attacks.engine import Target
from rift.attacks.registry import build_attack
from rift.data import Example
from rift.errors import RiftError
from rift.text.words import split_words

REVIEW = "the plot of this movie was bad and the acting was even worse than i had feared it would be ."
BAD = 6  # the position of "bad"


def target(text: str, label: int = 0) -> Target:
    words = split_words(text)
    return Target(Example(text, label), words, [[] for _ in words], len(words), torch.tensor([1.0, 0.0]))


def test_part_of_speech_admits_the_same_tag_and_noun_verb_swaps_only():
    review = target(REVIEW)
    check = PartOfSpeechMatch()
    assert check.admits(review, {}, [(BAD, "terrible"), (BAD, "badly"), (BAD, "vegetarian"), (BAD, "sofa")]) == [
        True, False, True, False]  # adjective, adverb, adjective, noun
    walk = target("the kids walk to school every day .")
    assert check.admits(walk, {}, [(2, "run"), (2, "trip"), (2, "happily")]) == [True, True, False]
    assert PartOfSpeechMatch(allow_noun_verb_swap=False).admits(walk, {}, [(2, "run"), (2, "trip")]) == [True, False]


def test_part_of_speech_tags_the_substitute_in_the_current_text():
    # "fish" after "to" reads as a verb, after "the" as a noun: a verb slot admits it only in the first context
    text = target("we like to swim in the lake .")
    check = PartOfSpeechMatch(allow_noun_verb_swap=False)
    assert check.admits(text, {}, [(3, "fish")]) == [True]
    assert check.admits(text, {2: "the"}, [(3, "fish")]) == [False]


def test_sentence_similarity_uses_the_threshold_and_the_window():
    review = target(REVIEW)
    check = SentenceSimilarity()
    assert check.threshold == pytest.approx(1 - 0.5 / 3.141592653589793)
    similarities = check.similarities(review, {}, [(BAD, "terrible"), (BAD, "vegetarian")])
    assert similarities[0] > 0.93 and similarities[1] < USE_THRESHOLD
    assert check.admits(review, {}, [(BAD, "terrible"), (BAD, "vegetarian")]) == [True, False]
    assert SentenceSimilarity(threshold=0.5).admits(review, {}, [(BAD, "vegetarian")]) == [True]
    # 15 words proper around a position, shifted inside the text at its ends; punctuation is not counted
    proper = list(range(20))
    assert [_window(proper, p, 15) for p in (0, 10, 19)] == [(0, 14), (3, 17), (5, 19)]
    assert _window([0, 2, 4], 2, 15) == (0, 4)  # a text shorter than the window: all of it
    # texts shorter than the window: skipped by default (TextAttack, TextDefender), compared whole if asked
    short = target("a bad movie .")
    assert SentenceSimilarity().admits(short, {}, [(1, "vegetarian")]) == [True]
    assert SentenceSimilarity(skip_short_texts=False).admits(short, {}, [(1, "vegetarian")]) == [False]
    with pytest.raises(RiftError, match="threshold"):
        SentenceSimilarity(threshold=2)


def test_textfooler_rejects_a_wrong_part_of_speech_and_a_dissimilar_substitute(tokenizer):
    # every substitute flips the bag-of-words model; TextFooler may use only the one that passes both checks
    weights = {"bad": -3, "badly": 2, "vegetarian": 2, "terrible": 2}
    example = Example(REVIEW, 0)

    def attack(substitutes, **options):
        model = BagOfWords(tokenizer, weights)
        [result] = build_attack("textfooler", model, tokenizer, DictSource({"bad": substitutes}), **options).attack(
            [example])
        return result

    blocked = attack(["badly", "vegetarian"])
    assert blocked.status == "failed" and blocked.changes == []
    allowed = attack(["badly", "vegetarian", "terrible"])
    assert allowed.status == "succeeded" and [c.new for c in allowed.changes] == ["terrible"]
    unconstrained = attack(["badly", "vegetarian"], constraints=())
    assert unconstrained.status == "succeeded" and unconstrained.changes[0].new in ("badly", "vegetarian")
    # rejected candidates are never sent to the model: 1 clean + 1 deletion probe + 1 admitted substitute
    assert allowed.queries == 3
