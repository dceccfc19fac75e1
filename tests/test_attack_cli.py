"""``rift attack`` end to end on a tiny fine-tuned model: results, saved examples, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import sentiment_examples
from test_cli import write_csv

from rift.cli import main

NAMES = ("negative", "positive")


@pytest.fixture()
def data_files(tmp_path):
    # the label names the tiny model was trained with (sentiment_task's), in its order
    train = write_csv(tmp_path / "train.csv", sentiment_examples(64, 0), NAMES)
    test = write_csv(tmp_path / "test.csv", sentiment_examples(40, 2), NAMES)
    return ["--task", "file", "--train-file", str(train), "--dev-file", str(train), "--test-file", str(test),
            "--text-column", "review", "--label-column", "sentiment", "--label-names", ",".join(NAMES),
            "--max-length", "32"]


def test_ascc_attack_writes_results_and_every_example_and_resumes(tmp_path, trained_tiny_dir, data_files, capsys):
    out = tmp_path / "attack"
    command = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--split", "test",
               "--num-examples", "24", "--seed", "1", "--output-dir", str(out)]
    assert main(command) == 0
    results = json.loads((out / "results.json").read_text())
    summary = results["attacks"]["ascc"]
    assert summary["num_examples"] == 24
    assert 0 <= summary["robust_accuracy"] <= summary["clean_accuracy"] <= 1
    assert summary["attack_success_rate"] == pytest.approx(
        (summary["clean_accuracy"] - summary["robust_accuracy"]) / summary["clean_accuracy"])
    lines = (out / "examples_ascc.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 24 and len({r["index"] for r in records}) == 24
    assert {r["status"] for r in records} <= {"skipped", "failed", "succeeded"}
    assert "ascc" in capsys.readouterr().out  # the printed table

    # an interrupted run: only the first 10 examples were saved; the re-run attacks the rest and ends identical
    (out / "examples_ascc.jsonl").write_text("\n".join(lines[:10]) + "\n")
    assert main(command) == 0
    resumed = [json.loads(line) for line in (out / "examples_ascc.jsonl").read_text().splitlines()]
    assert len(resumed) == len(records)
    for a, b in zip(resumed, records):  # re-attacked in other batches: probabilities to float precision, times differ
        assert {k: v for k, v in a.items() if k != "seconds" and "probabilities" not in k} == {
            k: v for k, v in b.items() if k != "seconds" and "probabilities" not in k}
        for key in ("clean_probabilities", "adversarial_probabilities"):
            assert a[key] == pytest.approx(b[key], abs=1e-5)
    assert resumed[:10] == records[:10]  # the saved ones are kept as they were
    assert json.loads((out / "results.json").read_text())["attacks"]["ascc"]["robust_accuracy"] == pytest.approx(
        summary["robust_accuracy"])


def test_an_attack_with_nothing_to_substitute_is_refused(tmp_path, trained_tiny_dir, data_files, capsys,
                                                         monkeypatch):
    from rift.evaluation import attack_run
    from rift.substitutions import SubstitutionSource

    class Nothing(SubstitutionSource):  # a synonym table that matches none of the data's words
        name = "nothing"

        def substitutes(self, words, position):
            return []

    out = tmp_path / "attack"
    command = ["attack", "--model", trained_tiny_dir, *data_files, "--num-examples", "8", "--output-dir", str(out)]
    monkeypatch.setattr(attack_run, "build_substitution_source", lambda *args, **kwargs: Nothing())
    assert main(command) == 2
    assert capsys.readouterr().err.strip() == (
        "rift: error: the counterfitted substitutions offer no substitute for any word of the 8 sampled examples: "
        "every attack would leave them as they are and report robust accuracy equal to clean accuracy; check the "
        "substitution table")
    assert not out.exists()
    monkeypatch.undo()
    assert main(command) == 0
    assert json.loads((out / "results.json").read_text())["examples_with_substitutes"] == 8


def test_attack_bad_input_is_one_line(tmp_path, trained_tiny_dir, data_files, capsys):
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "nope", "--output-dir",
                 str(tmp_path / "o")]) == 2
    assert "--attack: 'nope' is not one of" in capsys.readouterr().err
    assert main(["attack", "--model", trained_tiny_dir, "--task", "snli", "--attack", "ascc", "--output-dir",
                 str(tmp_path / "o")]) == 2
    assert "3" in capsys.readouterr().err  # the label counts differ
    missing = tmp_path / "nowhere"
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--data-dir", str(missing),
                 "--output-dir", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_attack_refuses_to_mix_settings_in_one_folder(tmp_path, trained_tiny_dir, data_files, capsys):
    out = tmp_path / "attack"
    base = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--num-examples", "4",
            "--ascc-steps", "2", "--output-dir", str(out)]
    assert main(base) == 0
    assert main([*base, "--seed", "5"]) == 2
    assert "seed" in capsys.readouterr().err


def test_a_moved_attack_folder_resumes(tmp_path, trained_tiny_dir, data_files):
    base = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--ascc-steps", "1", "--seed", "3"]
    assert main([*base, "--num-examples", "6", "--output-dir", str(tmp_path / "first")]) == 0
    saved = (tmp_path / "first" / "examples_ascc.jsonl").read_text().splitlines()
    (tmp_path / "first").rename(tmp_path / "moved")
    assert main([*base, "--num-examples", "6", "--output-dir", str(tmp_path / "moved")]) == 0
    assert (tmp_path / "moved" / "examples_ascc.jsonl").read_text().splitlines() == saved  # nothing attacked again


def test_sample_seed_fixes_the_attacked_examples_across_model_seeds(tmp_path, trained_tiny_dir, data_files):
    chosen = []
    for seed in (1, 2):
        out = tmp_path / f"s{seed}"
        assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--ascc-steps", "1",
                     "--num-examples", "6", "--seed", str(seed), "--sample-seed", "7", "--output-dir", str(out)]) == 0
        chosen.append([json.loads(line)["index"] for line in (out / "examples_ascc.jsonl").read_text().splitlines()])
    assert chosen[0] == chosen[1] and len(chosen[0]) == 6


def test_textdefender_protocol_limits_hold_for_every_example(tmp_path, trained_tiny_dir, capsys):
    import math
    import random

    from conftest import FILLER, NEGATIVE, POSITIVE

    from rift.attacks.constraints import USE_THRESHOLD, SentenceSimilarity
    from rift.attacks.engine import Target
    from rift.data import Example, resolve_data_dir
    from rift.substitutions import build_substitution_source
    from rift.text.words import count_words, split_words

    rng = random.Random(3)
    long = []  # reviews of 15 words and more, for the similarity check; the short ones have 4 to 9 words
    for i in range(12):
        words = [rng.choice(FILLER) for _ in range(rng.randint(14, 20))]
        words.insert(rng.randrange(len(words)), rng.choice(POSITIVE if i % 2 else NEGATIVE))
        long.append(Example(" ".join(words) + " .", i % 2))
    examples = sentiment_examples(30, 2) + long
    train = write_csv(tmp_path / "train.csv", sentiment_examples(64, 0), NAMES)
    test = write_csv(tmp_path / "test.csv", examples, NAMES)
    data = ["--task", "file", "--train-file", str(train), "--dev-file", str(train), "--test-file", str(test),
            "--text-column", "review", "--label-column", "sentiment", "--label-names", ",".join(NAMES)]
    out = tmp_path / "protocol"
    command = ["attack", "--model", trained_tiny_dir, *data, "--attack", "pwws,textfooler,genetic", "--protocol",
               "textdefender", "--population", "6", "--generations", "3", "--output-dir", str(out)]
    assert main(command) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == {
        "name": "textdefender", "max_changed_share": 0.3, "max_substitutes": 50, "similarity_threshold": USE_THRESHOLD,
        "similarity_window": 15, "skip_short_texts": True, "query_budget_per_word": 50, "min_words": 5,
        "max_examples": 1000, "max_length": 128}

    source = build_substitution_source("counterfitted", resolve_data_dir(None))
    similarity = SentenceSimilarity(skip_short_texts=False)
    eligible = [i for i, e in enumerate(examples) if count_words(split_words(e.text)) > 4]
    checked_similarity = 0
    assert len(eligible) < len(examples)  # some texts are too short to be attacked
    for name in ("pwws", "textfooler", "genetic"):
        records = [json.loads(line) for line in (out / f"examples_{name}.jsonl").read_text().splitlines()]
        assert sorted(r["index"] for r in records) == eligible  # every text the protocol admits, no other
        assert {r["status"] for r in records} >= {"succeeded"}
        for r in records:
            assert r["num_words"] > 4
            assert len(r["changes"]) <= math.floor(0.3 * r["num_words"])
            assert r["queries"] <= 50 * r["num_words"]
            words = [w.text for w in split_words(r["text"])]
            for change in r["changes"]:
                assert change["new"] in source.substitutes(words, change["position"])[:50]
            if len(r["changes"]) == 1 and r["num_words"] >= 15:  # one change: it was made in the original text
                change = r["changes"][0]
                original = Target(examples[r["index"]], split_words(r["text"]), [], 0, None)
                [score] = similarity.similarities(original, {}, [(change["position"], change["new"])])
                assert score >= USE_THRESHOLD
                checked_similarity += 1
    assert checked_similarity > 0

    # the protocol's settings are not mixed with others
    for extra, message in ((["--max-changed-share", "0.5"], "drop --max-changed-share 0.5"),
                           (["--query-budget", "100"], "drop --query-budget"),
                           (["--num-examples", "2000"], "at most 1000"),
                           (["--max-length", "64"], "drop --max-length 64")):
        capsys.readouterr()
        assert main([*command[:-2], *extra, "--output-dir", str(tmp_path / "other")]) == 2
        assert message in capsys.readouterr().err
    assert main(["attack", "--model", trained_tiny_dir, *data, "--attack", "ascc", "--protocol", "textdefender",
                 "--output-dir", str(tmp_path / "ascc")]) == 2
    assert "ascc" in capsys.readouterr().err


@pytest.mark.slow
def test_an_attack_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path, trained_tiny_dir, data_files):
    import os
    import signal
    import subprocess
    import sys
    import time

    options = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "genetic", "--population", "12",
               "--generations", "10", "--seed", "4", "--batch-size", "16"]
    assert main([*options, "--output-dir", str(tmp_path / "straight")]) == 0
    expected = sorted((json.loads(line) for line in (tmp_path / "straight" / "examples_genetic.jsonl").open()),
                      key=lambda r: r["index"])

    killed = tmp_path / "killed"
    saved = killed / "examples_genetic.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "rift.cli", *options, "--output-dir", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if saved.exists() and saved.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    lines = saved.read_text().splitlines()
    assert 3 <= len(lines) < len(expected)  # killed mid-way, with every finished example on disk
    with open(saved, "a") as stream:  # and as if killed while writing a line: half of one
        stream.write(json.dumps(expected[-1])[:50])

    with pytest.warns(UserWarning, match="last line is incomplete"):
        assert main([*options, "--output-dir", str(killed)]) == 0
    resumed = [json.loads(line) for line in saved.open()]
    assert [r["index"] for r in resumed] == [r["index"] for r in expected]
    for a, b in zip(resumed, expected):  # re-attacked in other batches: probabilities to float precision
        assert {k: v for k, v in a.items() if k != "seconds" and "probabilities" not in k} == {
            k: v for k, v in b.items() if k != "seconds" and "probabilities" not in k}
        for key in ("clean_probabilities", "adversarial_probabilities"):
            assert a[key] == pytest.approx(b[key], abs=1e-5)


def test_a_damaged_line_before_the_last_is_a_one_line_error(tmp_path, trained_tiny_dir, data_files, capsys):
    options = ["attack", "--model", trained_tiny_dir, *data_files, "--attack", "ascc", "--ascc-steps", "1",
               "--num-examples", "4", "--output-dir", str(tmp_path / "a")]
    assert main(options) == 0
    saved = tmp_path / "a" / "examples_ascc.jsonl"
    lines = saved.read_text().splitlines()
    saved.write_text("\n".join([lines[0][:20], *lines[1:]]) + "\n")
    assert main(options) == 2
    assert "line 1: not an attack result" in capsys.readouterr().err


def test_a_label_order_other_than_the_models_is_refused(tmp_path, trained_tiny_dir, data_files, capsys):
    # the model was trained as negative,positive: the same file read as positive,negative swaps every label
    swapped = [*data_files]
    swapped[swapped.index("--label-names") + 1] = "positive,negative"
    command = ["attack", "--model", trained_tiny_dir, *swapped, "--attack", "ascc", "--ascc-steps", "1",
               "--num-examples", "8"]
    assert main([*command, "--output-dir", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "trained with labels negative,positive (in id order) but the task has positive,negative" in error
    assert "the same labels in another order" in error and error.count("\n") == 1
    assert not (tmp_path / "a").exists()
    assert main(["eval", "--model", trained_tiny_dir, *swapped, "--output", str(tmp_path / "e.json")]) == 2
    assert "another order" in capsys.readouterr().err
    # other names altogether, and the flag that accepts the difference
    renamed = tmp_path / "renamed.csv"
    write_csv(renamed, sentiment_examples(40, 2), ("bad", "good"))
    assert main(["attack", "--model", trained_tiny_dir, "--task", "file", "--train-file", str(renamed),
                 "--test-file", str(renamed), "--text-column", "review", "--label-column", "sentiment",
                 "--label-names", "bad,good", "--attack", "ascc", "--output-dir", str(tmp_path / "b")]) == 2
    assert "other label names" in capsys.readouterr().err
    assert main([*command, "--allow-label-mismatch", "--output-dir", str(tmp_path / "c")]) == 0
    held = json.loads((tmp_path / "c" / "results.json").read_text())["attacks"]["ascc"]["clean_accuracy"]
    assert held <= 0.25  # what the flag lets through: the swapped labels score the model as mostly wrong


def test_the_worst_case_over_the_attacks_is_a_hand_count_of_their_results(tmp_path, trained_tiny_dir, data_files,
                                                                          capsys):
    from rift.attacks.results import AttackResult, worst_case

    def results(statuses: dict[int, str]) -> dict[int, AttackResult]:
        return {i: AttackResult(index=i, label=0, status=status, text="t", text_pair=None, adversarial_text="t",
                                adversarial_text_pair=None, clean_prediction=0, clean_probabilities=[1.0, 0.0],
                                adversarial_prediction=0, adversarial_probabilities=[1.0, 0.0], changes=[],
                                num_words=1, queries=1, seconds=0.0) for i, status in statuses.items()}

    first = results({0: "failed", 1: "succeeded", 2: "skipped", 3: "failed", 5: "failed"})
    second = results({0: "failed", 1: "failed", 3: "succeeded", 4: "failed", 5: "failed"})
    found = worst_case({"a": first, "b": second})  # in common: 0, 1, 3, 5; held by both: 0 and 5
    assert (found["num_examples"], found["num_robust"], found["robust_accuracy"]) == (4, 2, 0.5)
    assert worst_case({"a": first}) is None

    out = tmp_path / "attack"
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "pwws,textfooler,ascc",
                 "--num-examples", "16", "--output-dir", str(out)]) == 0
    assert "worst case" in capsys.readouterr().out.splitlines()[1]  # the first row of the printed table
    saved = json.loads((out / "results.json").read_text())
    worst = saved["worst_case"]
    assert worst["attacks"] == ["pwws", "textfooler"]  # ascc, the training adversary's measure, is no text attack
    statuses = {name: {r["index"]: r["status"] for r in map(json.loads, (out / f"examples_{name}.jsonl")
                                                           .read_text().splitlines())}
                for name in ("pwws", "textfooler")}
    held = [i for i in statuses["pwws"] if statuses["pwws"][i] == statuses["textfooler"][i] == "failed"]
    assert (worst["num_examples"], worst["num_robust"]) == (16, len(held))
    assert worst["robust_accuracy"] <= min(saved["attacks"][name]["robust_accuracy"] for name in statuses)
    # the model card leads with it
    from pathlib import Path
    entries = json.loads((Path(trained_tiny_dir) / "robustness.json").read_text())["attacks"]
    [entry] = [e for e in entries if e["attack"] == "worst-case" and e["num_examples"] == 16]
    assert entries[0]["attack"] == "worst-case" and entry["attacks"] == ["pwws", "textfooler"]
    assert entry["summary"]["num_robust"] == len(held)
    card = (Path(trained_tiny_dir) / "README.md").read_text()
    assert "accuracy under the worst case of PWWS" in card


def test_samples_of_one_seed_are_nested_across_sizes_and_eligibility():
    from rift.evaluation.robustness import attack_sample

    everything = attack_sample(50, None, seed=3)
    assert everything == list(range(50))
    small, large = attack_sample(50, 10, seed=3), attack_sample(50, 30, seed=3)
    assert len(small) == 10 and len(large) == 30 and set(small) <= set(large)
    even = attack_sample(50, 20, seed=3, eligible=lambda i: i % 2 == 0)  # a protocol admitting even positions only
    assert len(even) == 20 and all(i % 2 == 0 for i in even)
    # every admitted example of the smaller sample is in the larger sample of admitted ones
    assert {i for i in small if i % 2 == 0} <= set(even)
    assert attack_sample(50, 10, seed=4) != small  # the seed chooses


def test_pwws_wordnet_attacks_with_wordnets_synonyms_beside_the_runs_own(tmp_path, trained_tiny_dir, data_files):
    from rift.data import resolve_data_dir
    from rift.substitutions import build_substitution_source
    from rift.text.words import split_words

    out = tmp_path / "attack"
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "pwws,pwws-wordnet",
                 "--num-examples", "12", "--output-dir", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["attacks"]["pwws"]["synonyms"] == "counterfitted"
    assert results["attacks"]["pwws-wordnet"]["synonyms"] == "wordnet"
    assert results["worst_case"]["attacks"] == ["pwws", "pwws-wordnet"]
    wordnet = build_substitution_source("wordnet", resolve_data_dir(None))
    changes = 0
    for line in (out / "examples_pwws-wordnet.jsonl").read_text().splitlines():
        record = json.loads(line)
        words = [w.text for w in split_words(record["text"])]
        for change in record["changes"]:  # every change is one of WordNet's synonyms of that word
            assert change["new"] in wordnet.substitutes(words, change["position"])
            changes += 1
    assert changes
    entries = json.loads((Path(trained_tiny_dir) / "robustness.json").read_text())["attacks"]
    assert {e["synonyms"] for e in entries if e["attack"] == "pwws-wordnet"} == {"wordnet"}
    # a later call that reads only the counter-fitted table (as rift bench's separate genetic call does) adds its
    # attack: WordNet, not read this time, is unchanged where it was
    assert main(["attack", "--model", trained_tiny_dir, *data_files, "--attack", "genetic", "--num-examples", "4",
                 "--population", "4", "--generations", "2", "--output-dir", str(out)]) == 0
    assert set(json.loads((out / "results.json").read_text())["attacks"]) == {"pwws", "pwws-wordnet", "genetic"}
