"""Substitution sources: known answers from the real data, the source contract, and error messages."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from rift.data import resolve_data_dir
from rift.errors import RiftError
from rift.substitutions import (
    CounterFittedSynonyms,
    FilteredSource,
    SubstitutionSource,
    WordNetSynonyms,
    build_substitution_source,
    coverage,
    is_word,
    load_stopwords,
)
from rift.substitutions.wordnet import default_wordnet_dir

DATA_DIR = resolve_data_dir()
TABLE = DATA_DIR / "synonyms" / "counterfitted_neighbors.json"
STOPWORDS = DATA_DIR / "stopwords" / "english.txt"


@pytest.fixture(scope="module")
def table() -> dict[str, list[str]]:
    return json.loads(TABLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wordnet() -> WordNetSynonyms:
    if not default_wordnet_dir().is_dir():
        pytest.skip(f"WordNet not installed at {default_wordnet_dir()} (apt-get install wordnet-base)")
    return WordNetSynonyms()


def sst2_sentences(n: int) -> list[list[str]]:
    lines = (DATA_DIR / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1 : n + 1]
    return [line.split("\t")[0].split() for line in lines]


class Everything(SubstitutionSource):
    """A stub that offers two substitutes for any word, to test what FilteredSource removes."""

    name = "everything"

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return ["alpha", "beta"]


# --- counter-fitted neighbours -------------------------------------------------------------------


def test_counterfitted_known_answers(table: dict[str, list[str]]) -> None:
    source = CounterFittedSynonyms(TABLE)
    assert source.substitutes(["movie"], 0) == [
        "film", "filmmaking", "films", "movies", "cinema", "cinematographic", "cinematic", "cinematography",
    ]
    for word in ["good", "bad", "very", "great"]:
        assert source.substitutes(["a", word], 1) == table[word]
    assert source.substitutes(["Movie"], 0) == table["movie"]  # lookup is by the lower-cased word
    assert source.substitutes(["qwertyuiop"], 0) == []


def test_counterfitted_table_is_loaded_once() -> None:
    assert CounterFittedSynonyms(TABLE)._table is CounterFittedSynonyms(str(TABLE))._table


@pytest.mark.parametrize("name", ["counterfitted", "wordnet"])
def test_source_contract_on_real_text(name: str) -> None:
    if name == "wordnet" and not default_wordnet_dir().is_dir():
        pytest.skip(f"WordNet not installed at {default_wordnet_dir()} (apt-get install wordnet-base)")
    source = build_substitution_source(name, DATA_DIR)
    for words in sst2_sentences(100):
        for word, found in zip(words, source.substitutes_all(words)):
            assert word.lower() not in {s.lower() for s in found}
            assert len(found) == len(set(found))
            assert all(is_word(s) for s in found)  # single words, no spaces, '_' or hyphens


# --- filtering ------------------------------------------------------------------------------------


def test_stopwords_get_none(table: dict[str, list[str]]) -> None:
    assert table["just"] and table["more"]  # stop words that the table does have neighbours for
    stopwords = load_stopwords(STOPWORDS)
    assert {"just", "more", "the", "not"} <= stopwords
    filtered = build_substitution_source("counterfitted", DATA_DIR)
    assert filtered.substitutes_all(["Just", "more", "movie"])[:2] == [[], []]
    unfiltered = build_substitution_source("counterfitted", DATA_DIR, exclude_stopwords=False)
    assert unfiltered.substitutes(["just"], 0) == table["just"]


def test_case_is_kept(table: dict[str, list[str]]) -> None:
    source = build_substitution_source("counterfitted", DATA_DIR)
    assert source.substitutes(["Good"], 0) == [s.capitalize() for s in table["good"]]
    assert source.substitutes(["GOOD"], 0) == [s.upper() for s in table["good"]]
    assert source.substitutes(["good"], 0) == table["good"]
    lower = build_substitution_source("counterfitted", DATA_DIR, keep_case=False)
    assert lower.substitutes(["GOOD"], 0) == table["good"]


def test_only_alphabetic_words_get_substitutes() -> None:
    source = FilteredSource(Everything())
    words = [".", ",", "10", "'s", "80s", "x_y", "-", "don't", "don’t", "word"]
    assert [bool(s) for s in source.substitutes_all(words)] == [False] * 7 + [True] * 3


def test_max_substitutes_and_vocabulary(table: dict[str, list[str]]) -> None:
    assert build_substitution_source("counterfitted", DATA_DIR, max_substitutes=3).substitutes(
        ["movie"], 0
    ) == table["movie"][:3]
    base = CounterFittedSynonyms(TABLE)
    source = FilteredSource(base, vocabulary=lambda w: w.endswith("s"), max_substitutes=2)
    assert source.substitutes(["movie"], 0) == ["films", "movies"]
    with pytest.raises(RiftError, match="max_substitutes"):
        FilteredSource(base, max_substitutes=-1)


def test_coverage() -> None:
    source = FilteredSource(Everything(), stopwords={"the"})
    assert coverage(source, [["the", "movie", "."], ["good"]]) == {
        "words": 4, "words_with_substitutes": 2, "share": 0.5,
    }
    assert coverage(source, []) == {"words": 0, "words_with_substitutes": 0, "share": 0.0}


# --- WordNet -----------------------------------------------------------------------------------------


def test_wordnet_car(wordnet: WordNetSynonyms) -> None:
    found = wordnet.synonyms("car")
    assert found[:5] == ["auto", "automobile", "machine", "motorcar", "railcar"]
    db = wordnet._wordnet
    raw = [lemma for offset in db.index["n"]["car"] for lemma in db.synset_lemmas("n", offset)]
    assert {"railway_car", "elevator_car", "cable_car"} <= set(raw)  # multi-word lemmas WordNet does list...
    assert "car" not in found and not any("_" in s for s in found)  # ...are dropped, as is the word itself
    assert wordnet.substitutes(["my", "Car"], 1) == found


def test_wordnet_inflected_words_use_base_forms(wordnet: WordNetSynonyms) -> None:
    dogs = wordnet.synonyms("dogs")  # regular plural, morphy's "s" rule; also the verb "to dog"
    assert {"hound", "frankfurter", "chase", "track"} <= set(dogs)
    assert "dog" not in dogs and "domestic_dog" not in dogs
    went = wordnet.synonyms("went")  # irregular: verb.exc maps went -> go
    assert {"travel", "proceed", "depart", "move"} <= set(went)
    assert "go" not in went
    assert wordnet.synonyms("geese")[:2] == ["fathead", "goof"]  # noun.exc: geese -> goose


def test_wordnet_part_of_speech_and_hyphens(wordnet: WordNetSynonyms) -> None:
    assert wordnet.synonyms("dogs", pos="v") == ["chase", "trail", "tail", "tag", "track"]
    assert WordNetSynonyms(pos="v").substitutes(["dogs"], 0) == ["chase", "trail", "tail", "tag", "track"]
    # guardant's synset is "guardant(ip) gardant(ip) full-face": markers stripped, hyphenated lemma dropped
    assert wordnet.synonyms("guardant") == ["gardant"]
    with pytest.raises(RiftError, match="part of speech"):
        wordnet.synonyms("dogs", pos="x")


# --- errors ------------------------------------------------------------------------------------------


def test_missing_and_bad_files_raise_rift_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(RiftError, match=re.escape(str(missing))):
        CounterFittedSynonyms(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RiftError, match=re.escape(str(bad))):
        CounterFittedSynonyms(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"good": "great"}')
    with pytest.raises(RiftError, match="list of words"):
        CounterFittedSynonyms(wrong)
    with pytest.raises(RiftError, match=re.escape(str(tmp_path / "stop.txt"))):
        load_stopwords(tmp_path / "stop.txt")
    with pytest.raises(RiftError, match="synonyms/counterfitted_neighbors.json"):
        build_substitution_source("counterfitted", tmp_path)


def test_missing_wordnet_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RiftError, match="apt-get install wordnet-base") as error:
        WordNetSynonyms(tmp_path / "wn")
    assert str(tmp_path / "wn") in str(error.value)
    monkeypatch.setenv("RIFT_WORDNET_DIR", str(tmp_path / "env-wn"))
    with pytest.raises(RiftError, match="env-wn"):
        build_substitution_source("wordnet", DATA_DIR)
    (tmp_path / "partial").mkdir()
    with pytest.raises(RiftError, match="index.noun"):
        WordNetSynonyms(tmp_path / "partial")


def test_unknown_source_name() -> None:
    with pytest.raises(RiftError, match="unknown substitution source 'glove'"):
        build_substitution_source("glove", DATA_DIR)


def test_a_union_source_offers_exactly_its_members_substitutes_each_cut_on_its_own():
    shared_data_dir = resolve_data_dir(None)
    from rift.substitutions import UnionSource, build_substitution_source

    words = ["a", "good", "and", "happy", "film"]
    counter = build_substitution_source("counterfitted", shared_data_dir, max_substitutes=3)
    wordnet = build_substitution_source("wordnet", shared_data_dir, max_substitutes=3)
    union = build_substitution_source("counterfitted,wordnet", shared_data_dir, max_substitutes=3)
    assert isinstance(union, UnionSource) and union.name == "counterfitted,wordnet"
    for position in range(len(words)):
        expected = list(dict.fromkeys([w.lower() for w in counter.substitutes(words, position)]
                                      + [w.lower() for w in wordnet.substitutes(words, position)]))
        assert [w.lower() for w in union.substitutes(words, position)] == expected
    assert set(wordnet.substitutes(words, 1)) - set(counter.substitutes(words, 1))  # each brings its own
    with pytest.raises(RiftError, match="names a source twice"):
        build_substitution_source("wordnet,wordnet", shared_data_dir)
