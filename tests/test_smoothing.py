"""Randomised smoothing's copies of a text (SAFER's, RanMASK's) and the votes over them that such a model predicts by:
copies use only allowed words, keep what they must, and are seeded by the input's shape, so that an attack's
candidates share the copies their changes do not touch; a vote is attacked as it predicts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_certification import MASK, SYNONYMS, TableSource
from test_distributed import data_options

from rift.cli import main
from rift.models import load_classifier
from rift.prediction import MaskVote, SubstitutionVote, VotePredictor, record_prediction, recorded_prediction
from rift.smoothing import kept_words, ranmask_copy, safer_copy
from rift.substitutions.perturbation_sets import PerturbationSets
from rift.text.words import split_words

def test_a_safer_copy_puts_in_each_word_only_members_of_its_set_cased_as_it_was():
    sets = PerturbationSets(TableSource(SYNONYMS), size=3)
    text = "Good film, the FINE movie!"
    seen = [set() for _ in range(5)]
    rng = np.random.default_rng(0)
    for _ in range(300):
        copy = safer_copy(text, sets, rng)
        words = [w.text for w in split_words(copy)]
        assert [words[i] for i in (2, 6)] == [",", "!"] and words[3] == "the"  # punctuation and lone words stay
        for slot, index in enumerate((0, 1, 4, 5)):
            seen[slot].add(words[index])
    assert seen[0] == {"Good", "Great", "Fine"} and seen[1] == {"film", "movie"}
    assert seen[2] == {"FINE", "GOOD", "OKAY"} and seen[3] == {"movie", "film"}
    assert safer_copy(text, sets, np.random.default_rng(7)) == safer_copy(text, sets, np.random.default_rng(7))


def test_a_ranmask_copy_keeps_the_stated_number_of_words_and_every_punctuation_mark():
    text = "a plot , a cast and a score that never quite meet ."
    words = split_words(text)
    proper = [w.text for w in words if w.text not in ",."]
    kept_counts = Counter()
    for seed in range(200):
        copy = ranmask_copy(text, 0.7, MASK, np.random.default_rng(seed))
        copied = [w.text for w in split_words(copy.replace(MASK, "MASKED"))]
        assert len(copied) == len(words) and copied[2] == "," and copied[-1] == "."
        kept = [c for c, w in zip(copied, words) if c != "MASKED"]
        assert all(c == w.text for c, w in zip(copied, words) if c != "MASKED")
        kept_counts[len(kept) - 2] += 1  # the two punctuation marks are always kept
    assert kept_counts == {kept_words(len(proper), 0.7): 200}  # 11 words: round(7.7) = 8 masked, 3 kept
    assert kept_words(len(proper), 0.7) == 3


# the votes -------------------------------------------------------------------------------------------------------

INPUTS = [("a good and fine film .", None), ("a dull , bad plot .", None), ("it is 42 .", None)]


def test_a_vote_scores_the_shares_of_its_copies_seeded_by_each_input(trained_tiny_dir, tokenizer):
    model = load_classifier(trained_tiny_dir).eval()
    ranmask = VotePredictor(model, tokenizer, MaskVote(samples=20, mask_rate=0.5), 32, batch_size=7)
    together = ranmask.scores(INPUTS)
    assert torch.equal(together, torch.cat([ranmask.scores([one]) for one in INPUTS]))  # not the batch's
    assert torch.allclose(together.sum(-1), torch.ones(3)) and torch.equal(together * 20, (together * 20).round())
    text, _ = INPUTS[0]
    assert torch.equal(ranmask.votes(text, None, 20).float() / 20, together[0])
    copies = ranmask.copies(text, None, 20)
    assert copies == ranmask.copies(text, None, 20) != ranmask.copies(text, None, 20, draw=1)
    assert all(copy.count(MASK) == 5 - kept_words(5, 0.5) for copy, _ in copies)  # five words, three masked
    # a pair keeps its first text and copies the second, which attacks change
    assert {first for first, _ in ranmask.copies("the premise", "a good film", 10)} == {"the premise"}

    sets = TableSource({"good": ["great", "fine"], "fine": ["good"], "bad": ["poor"], "poor": ["bad"]})
    safer = VotePredictor(model, tokenizer, SubstitutionVote(samples=20, set_size=3, synonyms="table",
                                                             max_substitutes=8), 32, sets)
    seen = {word.text for copy, _ in safer.copies(text, None, 20) for word in split_words(copy)}
    assert seen == {"a", "good", "great", "fine", "and", "film", "."}
    plain = model(**tokenizer(["it is 42 ."], return_tensors="pt")).logits.argmax(-1).item()
    assert safer.scores([INPUTS[2]])[0].tolist() == [float(plain == 0), float(plain == 1)]  # nothing to draw: one copy


def test_a_candidate_shares_every_copy_its_change_does_not_touch_and_each_copy_is_classified_once(
        trained_tiny_dir, tokenizer):
    model = load_classifier(trained_tiny_dir).eval()
    text, candidate = "a good and fine film .", "a good and dull film ."  # the fourth word changed
    ranmask = VotePredictor(model, tokenizer, MaskVote(samples=30, mask_rate=0.5), 32, batch_size=7)
    for (original, _), (changed, _) in zip(ranmask.copies(text, None, 30), ranmask.copies(candidate, None, 30)):
        fourth_masked = "fine" not in original
        assert (original == changed) == fourth_masked
        assert fourth_masked or changed == original.replace("fine", "dull")
    shared = sum(a == b for a, b in zip(ranmask.copies(text, None, 30), ranmask.copies(candidate, None, 30)))
    assert 0 < shared < 30
    # texts of one shape share the prediction's masks; a certificate's copies (draws 1, 2) are the text's own
    masks = lambda t, draw: [tuple(w == MASK for w in c.split()) for c, _ in ranmask.copies(t, None, 30, draw)]  # noqa: E731
    other = "the dull and bad plot ."
    assert masks(text, 0) == masks(other, 0) and masks(text, 2) != masks(other, 2)
    before = ranmask.scores([(text, None)])
    drawn, classified = ranmask.copies_drawn, ranmask.copies_classified
    after = ranmask.scores([(text, None), (candidate, None)])
    assert ranmask.copies_drawn - drawn == 60
    assert ranmask.copies_classified - classified == len(set(ranmask.copies(candidate, None, 30))
                                                          - set(ranmask.copies(text, None, 30)))
    fresh = VotePredictor(model, tokenizer, MaskVote(samples=30, mask_rate=0.5), 32, batch_size=3)
    assert torch.equal(after, fresh.scores([(text, None), (candidate, None)])) and torch.equal(before, after[:1])
    forgetful = VotePredictor(model, tokenizer, MaskVote(samples=30, mask_rate=0.5), 32, remembered=5)
    assert torch.equal(after, forgetful.scores([(text, None), (candidate, None)])) and len(forgetful.classified) == 5

    # SAFER: a substitute in the word's own set leaves every copy, hence the vote, as it was
    sets = TableSource({"good": ["great", "fine"], "fine": ["good"], "great": ["good"]})
    safer = VotePredictor(model, tokenizer, SubstitutionVote(samples=20, set_size=3, synonyms="table",
                                                             max_substitutes=8), 32, sets)
    assert safer.copies("a good film", None, 20) == safer.copies("a great film", None, 20)
    assert safer.copies("a good film", None, 20) != safer.copies("a good film here", None, 20)  # another shape


def test_a_model_that_votes_is_attacked_through_its_vote(tmp_path, trained_tiny_dir, tokenizer):
    model_dir = tmp_path / "ranmask"
    model = load_classifier(trained_tiny_dir)
    record_prediction(model, MaskVote(samples=8, mask_rate=0.5))
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    assert recorded_prediction(load_classifier(str(model_dir))) == MaskVote(samples=8, mask_rate=0.5)
    out = tmp_path / "attack"
    assert main(["attack", "--model", str(model_dir), *data_options(tmp_path), "--attack", "pwws",
                 "--num-examples", "4", "--output-dir", str(out)]) == 0
    records = [json.loads(line) for line in (out / "examples_pwws.jsonl").read_text().splitlines()]
    assert all(r["queries"] % 8 == 0 and r["queries"] >= 8 for r in records)  # every copy a query
    assert json.loads((out / "results.json").read_text())["prediction"]["kind"] == "ranmask"
    predictor = VotePredictor(load_classifier(str(model_dir)).eval(), tokenizer, MaskVote(samples=8, mask_rate=0.5), 32)
    first = records[0]
    assert first["clean_probabilities"] == pytest.approx(
        predictor.scores([(first["text"], None)]).softmax(-1)[0].tolist(), abs=1e-6)


def test_a_recorded_prediction_this_version_cannot_read_is_one_line(tmp_path, trained_tiny_dir):
    from rift.errors import RiftError

    model = load_classifier(trained_tiny_dir)
    model.config.rift_prediction = {"kind": "majority", "samples": 3}
    with pytest.raises(RiftError, match="cannot read"):
        recorded_prediction(model)
    model.config.rift_prediction = {"kind": "ranmask", "samples": 3, "mask_rate": 0.5, "aggregation": "logits"}
    with pytest.raises(RiftError, match="aggregates it by the share of votes only"):
        recorded_prediction(model)


@pytest.mark.parametrize("method", ["safer", "ranmask"])
def test_a_smoothing_defence_records_its_vote_and_is_attacked_through_it(tmp_path, tiny_model_dir, method):
    run = tmp_path / method
    assert main(["train", "--method", method, "--model", tiny_model_dir, *data_options(tmp_path), "--epochs", "1",
                 "--batch-size", "16", f"--{method}-samples", "4", "--output-dir", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())["rift_prediction"]
    assert saved["kind"] == method and saved["samples"] == 4 and saved["aggregation"] == "share of votes"
    assert saved.get("mask_rate", 0.7) == 0.7 and saved.get("set_size", 100) == 100  # the references' defaults
    out = tmp_path / "attack"
    assert main(["attack", "--model", str(run), *data_options(tmp_path), "--attack", "pwws", "--num-examples", "3",
                 "--output-dir", str(out)]) == 0
    records = [json.loads(line) for line in (out / "examples_pwws.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["queries"] % 4 == 0 for r in records)


def test_words_that_share_a_set_give_the_same_copies_whatever_their_casing():
    sets = PerturbationSets(TableSource({"good": ["fine"], "fine": ["good"]}), size=3)
    copies = lambda text: {safer_copy(text, sets, np.random.default_rng(seed)) for seed in range(50)}  # noqa: E731
    assert copies("gOOD movie") == copies("fine movie") == {"good movie", "fine movie"}
    assert copies("GOOD movie") == {"GOOD movie", "FINE movie"}  # a word in capitals keeps them
