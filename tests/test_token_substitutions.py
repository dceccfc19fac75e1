"""Substitute sets at the token level: only allowed words, only single-token words in the attacked segment,
known answers for WordPiece (MiniLM) and byte-level BPE, batching and coverage."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from rift.data import load_task, resolve_data_dir
from rift.errors import RiftError
from rift.substitutions import (
    SubstitutionSource,
    build_substitution_source,
    is_word,
    load_stopwords,
)
from rift.substitutions.tokens import (
    TokenSubstitutions,
    collate_substitutions,
    coverage_report,
    token_substitutions,
)
from rift.text.words import align
from rift.data.batching import collate, encode_examples

DATA_DIR = resolve_data_dir()
K = 8


class TableSource(SubstitutionSource):
    """Substitutes from a literal table, for hand-made cases."""

    name = "table"

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return list(self.table.get(words[position], []))


@pytest.fixture(scope="module")
def source() -> SubstitutionSource:
    return build_substitution_source("counterfitted", DATA_DIR)


@pytest.fixture(scope="module")
def sst2_dev(tokenizer, source):
    examples = load_task("sst2", DATA_DIR, log=lambda _: None).splits["dev"][:200]
    encoded = encode_examples(tokenizer, examples, max_length=64)
    return encoded, [token_substitutions(e.alignment, tokenizer, source, K) for e in encoded]


def test_substitutes_are_allowed_words_at_single_token_content_words(tokenizer, source, sst2_dev):
    normalize = tokenizer.backend_tokenizer.normalizer.normalize_str  # MiniLM is uncased
    stopwords = load_stopwords(DATA_DIR / "stopwords" / "english.txt")
    represented = 0
    for example, item in zip(*sst2_dev):
        alignment = example.alignment
        texts = [w.text for w in alignment.segments[0]]
        assert [row[0] for row in item.ids] == alignment.input_ids
        for position, row in enumerate(item.ids):
            owner = alignment.token_words[position]
            if owner is None:  # special tokens
                assert len(row) == 1
                continue
            word = owner[1]
            if len(alignment.tokens_of(0, word)) > 1 or not is_word(texts[word]) or texts[word].lower() in stopwords:
                assert len(row) == 1, texts[word]
                continue
            substitutes = row[1:]
            assert len(substitutes) <= K and len(set(row)) == len(row)
            allowed = {normalize(s) for s in source.substitutes(texts, word)}
            assert set(tokenizer.convert_ids_to_tokens(substitutes)) <= allowed
            represented += bool(substitutes)
    assert represented > 500  # the check above ran on many positions


def test_known_answer_minilm(tokenizer, source):
    # counter-fitted: movie -> film filmmaking films movies cinema cinematographic cinematic cinematography;
    # funny -> droll amusing hilarious comical humorous fun entertaining comic. In MiniLM's vocabulary
    # "cinematographic" and "droll" are several pieces, "unbelievably" (which has neighbours) is five.
    alignment = align(tokenizer, "The movie is funny, unbelievably.")
    item = token_substitutions(alignment, tokenizer, source, K)
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in item.ids]
    assert tokens[2] == ["movie", "film", "filmmaking", "films", "movies", "cinema", "cinematic", "cinematography"]
    assert tokens[4] == ["funny", "amusing", "hilarious", "comical", "humorous", "fun", "entertaining", "comic"]
    assert [len(row) for i, row in enumerate(tokens) if i not in (2, 4)] == [1] * (len(tokens) - 2)
    assert (item.words_with_substitutes, item.words_represented) == (3, 2)
    # pairs: 8 + 8 + those of "unbelievably"; a position holds 7 of movie's and 7 of funny's first 8
    words = ["The", "movie", "is", "funny", ",", "unbelievably", "."]
    assert item.substitutions == 16 + len(source.substitutes(words, 5)[:K]) > 16
    assert item.substitutions_represented == 14

    first_three = token_substitutions(alignment, tokenizer, source, 3)
    assert tokenizer.convert_ids_to_tokens(first_three.ids[2]) == ["movie", "film", "filmmaking", "films"]
    none = token_substitutions(alignment, tokenizer, source, 0)
    assert all(len(row) == 1 for row in none.ids) and none.words_represented == 0


def test_duplicates_the_original_id_and_unknown_tokens_are_dropped(tokenizer):
    # the uncased tokenizer maps "Movie" to the original's id and "Film"/"film" to one id; runes become [UNK]
    table = TableSource({"movie": ["Movie", "Film", "film", "ᚠᚢᚦ", "cinema"]})
    item = token_substitutions(align(tokenizer, "a movie"), tokenizer, table, K)
    assert tokenizer.convert_ids_to_tokens(item.ids[2]) == ["movie", "film", "cinema"]


def test_pair_attacks_the_last_segment_by_default(tokenizer, source):
    alignment = align(tokenizer, "a funny movie", "the movie is funny")
    types = alignment.token_type_ids
    default = token_substitutions(alignment, tokenizer, source, K)
    first = token_substitutions(alignment, tokenizer, source, K, segment=0)
    assert {types[t] for t, row in enumerate(default.ids) if len(row) > 1} == {1}
    assert {types[t] for t, row in enumerate(first.ids) if len(row) > 1} == {0}
    assert default.words_represented == first.words_represented == 2
    with pytest.raises(RiftError, match="segment 2"):
        token_substitutions(alignment, tokenizer, source, K, segment=2)


def test_truncated_words_are_ignored(tokenizer, source):
    alignment = align(tokenizer, "funny movie funny movie", max_length=4)  # [CLS] funny movie [SEP]
    item = token_substitutions(alignment, tokenizer, source, K)
    assert (item.words_with_substitutes, item.words_represented) == (2, 2)


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """Byte-level BPE with RoBERTa's special tokens; the corpus makes the substitutes single tokens both at the
    start of a text ('fine') and after a space ('Ġfine')."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    corpus = ["good film is fine ?!", "fine nice film", "nice good film", "the film is good and nice and fine"] * 20
    bpe = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    bpe.train_from_iterator(
        corpus, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False
    )
    bpe._tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def test_byte_level_bpe_tokenizes_substitutes_in_context(bpe_tokenizer):
    table = TableSource({"good": ["fine", "nice", "splendiferous"]})  # the last is many pieces: dropped
    alignment = align(bpe_tokenizer, "good film is good")
    tokens = bpe_tokenizer.convert_ids_to_tokens(alignment.input_ids)
    assert tokens == ["<s>", "good", "Ġfilm", "Ġis", "Ġgood", "</s>"]
    item = token_substitutions(alignment, bpe_tokenizer, table, K)
    tokens = [bpe_tokenizer.convert_ids_to_tokens(row) for row in item.ids]
    assert tokens[1] == ["good", "fine", "nice"]
    assert tokens[4] == ["Ġgood", "Ġfine", "Ġnice"]


def test_token_shared_by_two_words_is_not_substituted(bpe_tokenizer):
    # byte-level BPE keeps the punctuation run "?!" as one token, which covers the words "?" and "!"
    alignment = align(bpe_tokenizer, "good ?!")
    shared = alignment.tokens_of(0, 1)
    assert shared == alignment.tokens_of(0, 2) and len(shared) == 1
    item = token_substitutions(alignment, bpe_tokenizer, TableSource({"?": ["good"], "!": ["fine"]}), K)
    assert all(len(row) == 1 for row in item.ids)
    assert (item.words_with_substitutes, item.words_represented) == (2, 0)


def test_collate_pads_truncates_and_keeps_slot_zero_valid():
    items = [
        TokenSubstitutions([[101], [7, 8, 9, 10], [102]], 1, 1),
        TokenSubstitutions([[101], [5, 6], [11], [12, 13], [102]], 2, 2),
    ]
    ids, mask = collate_substitutions(items, width=6, max_substitutes=2)
    assert ids.shape == mask.shape == (2, 6, 3) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert ids[0].tolist() == [[101, 0, 0], [7, 8, 9], [102, 0, 0]] + [[0, 0, 0]] * 3
    assert ids[1].tolist() == [[101, 0, 0], [5, 6, 0], [11, 0, 0], [12, 13, 0], [102, 0, 0], [0, 0, 0]]
    assert mask[0].tolist() == [[True, False, False], [True, True, True]] + [[True, False, False]] * 4
    assert mask[1, :, 1].tolist() == [False, True, False, True, False, False]
    assert mask[..., 0].all()  # slot 0 always valid, padding included
    padded, _ = collate_substitutions(items, width=5, max_substitutes=2, pad_token_id=1)
    assert padded[0, 3:, 0].tolist() == [1, 1]
    with pytest.raises(RiftError, match="batch width 4"):
        collate_substitutions(items, width=4, max_substitutes=2)


def test_collate_matches_the_token_batch(tokenizer, source, sst2_dev):
    encoded, items = sst2_dev
    batch = collate(encoded[:16], tokenizer.pad_token_id)
    ids, mask = collate_substitutions(items[:16], batch["input_ids"].shape[1], K, tokenizer.pad_token_id)
    assert torch.equal(ids[..., 0], batch["input_ids"])
    assert torch.equal(mask.sum(-1) > 1, (ids[..., 1:] != 0).any(-1))


def test_coverage_report_on_a_hand_example():
    items = [
        TokenSubstitutions([[101], [7, 8, 9, 10], [102]], 2, 1, 8, 3),
        TokenSubstitutions([[101], [5, 6], [11], [102]], 3, 1, 12, 1),
        TokenSubstitutions([[101], [102]], 0, 0, 0, 0),
    ]
    assert coverage_report(items) == {
        "words_with_substitutes": 5,
        "words_represented": 2,
        "share_represented": 0.4,
        "substitutions": 20,
        "substitutions_represented": 4,
        "share_substitutions": 0.2,
        "positions_with_substitutes": 2,
        "mean_substitutes_per_position": 2.0,
    }
    assert coverage_report([])["share_represented"] == 0.0
