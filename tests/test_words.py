"""Words and their alignment to WordPiece (MiniLM) and byte-level BPE (RoBERTa-style) tokens."""

from __future__ import annotations

import pytest

from rift.text.words import align, replace_words, split_words

TEXTS = [
    "The film's unbelievably good, isn't it?",
    "Café naïve dog-walker: 3.5 stars — très bien!",
    "  spaces   and\ttabs  ",
    "unaffordable antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A byte-level BPE tokenizer with RoBERTa's special tokens, trained here on a few sentences."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    corpus = ["the film is good and the dog walks", "a naive walker in a cafe", "it is not bad at all"] * 20
    bpe = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    bpe.train_from_iterator(corpus, vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    bpe._tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def test_split_words_keeps_contractions_and_isolates_punctuation():
    words = [w.text for w in split_words("The film's unbelievably good, isn't it?")]
    assert words == ["The", "film's", "unbelievably", "good", ",", "isn't", "it", "?"]


def test_replace_words_changes_only_the_chosen_spans():
    text = "A  good film ,really."
    words = split_words(text)
    assert replace_words(text, words, {1: "fine", 4: "truly"}) == "A  fine film ,truly."
    assert replace_words(text, words, {}) == text


def _check_alignment(tokenizer, text, pair=None):
    alignment = align(tokenizer, text, pair)
    encoding = tokenizer(text, pair, return_offsets_mapping=True)
    assert alignment.input_ids == encoding["input_ids"]
    sources = [text] if pair is None else [text, pair]
    for segment, words in enumerate(alignment.segments):
        for index, word in enumerate(words):
            tokens = alignment.tokens_of(segment, index)
            assert tokens, f"word {word.text!r} has no token"
            spans = [encoding["offset_mapping"][t] for t in tokens]
            # the tokens cover exactly the word's characters (byte-level pieces of one character share its span)
            assert min(s for s, _ in spans) == word.start and max(e for _, e in spans) == word.end
            assert sources[segment][word.start : word.end] == word.text
            for t in tokens:
                assert alignment.token_words[t][0] == segment
    for position, owner in enumerate(alignment.token_words):
        if owner is None:
            continue
        segment, index = owner
        assert position in alignment.tokens_of(segment, index)
    return alignment


@pytest.mark.parametrize("text", TEXTS)
def test_wordpiece_alignment(tokenizer, text):
    _check_alignment(tokenizer, text)


@pytest.mark.parametrize("text", TEXTS)
def test_byte_level_bpe_alignment(bpe_tokenizer, text):
    _check_alignment(bpe_tokenizer, text)


def test_word_split_into_several_pieces(tokenizer, bpe_tokenizer):
    for tok in (tokenizer, bpe_tokenizer):
        alignment = align(tok, "antidisestablishmentarianism rules")
        assert len(alignment.tokens_of(0, 0)) > 1
        assert alignment.tokens_of(0, 0) == list(range(1, 1 + len(alignment.tokens_of(0, 0))))


def test_non_ascii_characters_map_to_their_word(bpe_tokenizer):
    alignment = align(bpe_tokenizer, "naïve café")
    # "ï" and "é" are two bytes each; their byte tokens still belong to the word
    assert [w.text for w in alignment.segments[0]] == ["naïve", "café"]
    words_of_tokens = {owner for owner in alignment.token_words if owner is not None}
    assert words_of_tokens == {(0, 0), (0, 1)}


@pytest.mark.parametrize("which", ["wordpiece", "bpe"])
def test_pair_alignment(tokenizer, bpe_tokenizer, which):
    tok = tokenizer if which == "wordpiece" else bpe_tokenizer
    alignment = _check_alignment(tok, "A dog runs.", "An animal is running!")
    assert [w.text for w in alignment.segments[1]] == ["An", "animal", "is", "running", "!"]
    assert min(alignment.tokens_of(1, 0)) > max(alignment.tokens_of(0, 3))


def test_truncation_leaves_cut_words_without_tokens(tokenizer):
    alignment = align(tokenizer, "one two three four five six", max_length=5)
    assert len(alignment.input_ids) == 5
    assert [bool(tokens) for tokens in alignment.word_tokens[0]] == [True, True, True, False, False, False]
