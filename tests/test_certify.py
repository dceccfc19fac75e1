"""``rift certify`` end to end on tiny models trained with safer and ranmask: certified accuracy is a lower bound
beside the attacks' upper one, an abstention counts as wrong, and an interrupted run continues to the same
certificates. The certificates themselves are checked by enumeration in test_certification.py."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from test_certification import TableSource
from test_cli import write_csv
from test_distributed import data_options

from rift.cli import main
from rift.data import Example
from rift.evaluation.certify_run import Certifier, summarize
from rift.run_folder import CERTIFIED_FILE
from rift.prediction import MaskVote
from rift.substitutions.perturbation_sets import PerturbationSets

SMALL = ["--selection-samples", "20", "--certify-samples", "200"]


POSITIVE = ["good", "great", "wonderful", "fine", "superb", "pleasant", "lovely"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "dreadful", "boring", "dull"]
ATTACKABLE = {"good": ["great"], "great": ["good"], "bad": ["awful"], "awful": ["bad"]}


def sentiment_words_data(folder: Path) -> list[str]:
    """Texts of five sentiment words of their class, exactly one of which a synonym table of the data folder's own
    lets the attacks change: every word carries the label, so that a masked copy still reads it and certificates
    are within reach of a tiny model."""
    data_dir = folder / "data"
    (data_dir / "synonyms").mkdir(parents=True)
    (data_dir / "stopwords").mkdir()
    (data_dir / "synonyms" / "counterfitted_neighbors.json").write_text(json.dumps(ATTACKABLE))
    (data_dir / "stopwords" / "english.txt").write_text("the\n")
    rng = random.Random(0)

    def examples(n: int) -> list[Example]:
        made = []
        for i in range(n):
            words = POSITIVE if i % 2 else NEGATIVE
            attackable = [w for w in words if w in ATTACKABLE]
            chosen = rng.sample([w for w in words if w not in ATTACKABLE], 4) + [rng.choice(attackable)]
            rng.shuffle(chosen)
            made.append(Example(" ".join(chosen) + " .", i % 2))
        return made

    names = ("negative", "positive")
    files = {split: write_csv(folder / f"{split}.csv", examples(n), names)
             for split, n in (("train", 96), ("dev", 32), ("test", 32))}
    return ["--task", "file", "--data-dir", str(data_dir), "--train-file", str(files["train"]), "--dev-file",
            str(files["dev"]), "--test-file", str(files["test"]), "--text-column", "review", "--label-column",
            "sentiment", "--label-names", ",".join(names), "--max-length", "32"]


@pytest.fixture(scope="module")
def smoothed(tmp_path_factory, tiny_model_dir):
    """A tiny model trained with each defence, at the references' settings, and the data options."""
    folder = tmp_path_factory.mktemp("smoothed")
    data = sentiment_words_data(folder)
    runs = {}
    for method in ("ranmask", "safer"):
        runs[method] = folder / method
        assert main(["train", "--method", method, "--model", tiny_model_dir, *data, "--epochs", "6",
                     "--batch-size", "16", "--learning-rate", "3e-3", f"--{method}-samples", "40",
                     "--output-dir", str(runs[method])]) == 0
    return runs, data


@pytest.mark.parametrize("method", ["ranmask", "safer"])
def test_certified_accuracy_is_at_most_the_worst_case_attacked_and_that_at_most_clean(smoothed, tmp_path, method):
    runs, data = smoothed
    certified_dir, attacked_dir = tmp_path / "certified", tmp_path / "attacked"
    assert main(["certify", "--model", str(runs[method]), *data, "--num-examples", "16", *SMALL,
                 "--output-dir", str(certified_dir)]) == 0
    certified = json.loads((certified_dir / "results.json").read_text())
    assert certified["smoothing"]["kind"] == method and certified["trained_for_smoothing"]
    assert main(["attack", "--model", str(runs[method]), *data, "--attack", "pwws,genetic", "--population", "8",
                 "--generations", "2", "--num-examples", "16", "--output-dir", str(attacked_dir)]) == 0
    attacked = json.loads((attacked_dir / "results.json").read_text())
    worst, clean = attacked["worst_case"]["robust_accuracy"], attacked["attacks"]["pwws"]["clean_accuracy"]
    assert certified["certified_accuracy"] <= worst <= clean
    assert certified["certified_accuracy"] <= certified["clean_accuracy"]
    records = [json.loads(line) for line in (certified_dir / CERTIFIED_FILE).read_text().splitlines()]
    assert [r["index"] for r in records] == sorted(r["index"] for r in records) and len(records) == 16
    card = (runs[method] / "README.md").read_text()  # the card keeps the certificate beside the attacks
    assert f"certified accuracy ({method}, test, n=16, against counterfitted substitutions, confidence 0.95" in card
    assert "accuracy under PWWS" in card
    assert certified["certified_accuracy"] > 0.3  # the bound is not empty: the comparisons above mean something
    if method == "ranmask":  # one word the attacks can change: a radius of one covers them
        assert all(r["attackable_words"] == 1 and r["certified"] == (r["radius"] is not None and r["radius"] >= 1)
                   for r in records)
        radii = list(certified["certified_accuracy_at_radius"].values())
        assert radii == sorted(radii, reverse=True)


def test_an_interrupted_certification_continues_to_the_same_certificates(smoothed, tmp_path):
    runs, data = smoothed
    command = ["certify", "--model", str(runs["ranmask"]), *data, *SMALL]
    assert main([*command, "--num-examples", "8", "--output-dir", str(tmp_path / "straight")]) == 0
    assert main([*command, "--num-examples", "3", "--output-dir", str(tmp_path / "cut")]) == 0
    with open(tmp_path / "cut" / CERTIFIED_FILE, "a") as stream:  # a kill half-way through the next record
        stream.write('{"index": 9')
    assert main([*command, "--num-examples", "8", "--output-dir", str(tmp_path / "cut")]) == 0
    timeless = lambda path: [{k: v for k, v in json.loads(line).items() if "seconds" not in k}  # noqa: E731
                             for line in Path(path).read_text().splitlines()]
    assert timeless(tmp_path / "cut" / CERTIFIED_FILE) == timeless(tmp_path / "straight" / CERTIFIED_FILE)
    assert main([*command, "--num-examples", "8", "--alpha", "0.01", "--output-dir", str(tmp_path / "cut")]) == 2


class FixedVotes:
    """A vote with ``prediction`` votes per class on the prediction's copies, unanimous for class 1 on any other
    draw; it counts the copies drawn."""

    prediction = MaskVote(samples=10, mask_rate=0.5)
    samples, model_seconds = 10, 0.0

    def __init__(self, prediction=(5, 5)):
        self.on_prediction, self.drawn = prediction, 0

    def votes(self, text, pair, samples, draw=0):
        self.drawn += samples
        return torch.tensor(self.on_prediction) if draw == 0 else torch.tensor([0, samples])


def test_an_abstention_counts_as_wrong_and_is_never_certified():
    args = SimpleNamespace(alpha=0.05, selection_samples=10)
    decisive = FixedVotes((0, 10))
    record = Certifier(decisive, args, 100, None, TableSource({})).certify(0, "a good film", None, 1)
    assert record["predicted"] == record["selected"] == 1 and record["p_lower"] > 0.97 and record["radius"] == 0
    assert decisive.drawn == 10 + 10 + 100
    tied = FixedVotes((5, 5))  # the same copies elsewhere: the bound alone would certify it
    record = Certifier(tied, args, 100, None, TableSource({})).certify(0, "a good film", None, 1)
    assert record["predicted"] is None and record["radius"] is None and not record["certified"]
    assert record["p_lower"] is None and tied.drawn == 10  # nothing it could count for is drawn
    wrong = FixedVotes((10, 0))
    record = Certifier(wrong, args, 100, None, TableSource({})).certify(0, "a good film", None, 1)
    assert record["predicted"] == 0 and not record["certified"] and wrong.drawn == 10
    # SAFER: where not even a unanimous estimate could cover the attacks' substitutes, none is drawn
    sets = PerturbationSets(TableSource({}), 3)  # every word's set is the word alone
    covered = FixedVotes((0, 10))
    record = Certifier(covered, args, 100, sets, TableSource({})).certify(0, "a good film", None, 1)
    assert record["overlap"] == 1 and record["certified"] and covered.drawn == 120
    exposed = FixedVotes((0, 10))
    record = Certifier(exposed, args, 100, sets, TableSource({"good": ["great"]})).certify(0, "a good film", None, 1)
    assert record["overlap"] == 0 and not record["certified"] and record["p_lower"] is None and exposed.drawn == 10
    records = [{"label": 1, "predicted": 1, "certified": True, "radius": 2},
               {"label": 1, "predicted": None, "certified": False, "radius": None},
               {"label": 0, "predicted": 1, "certified": False, "radius": None},
               {"label": 0, "predicted": 0, "certified": True, "radius": 0}]
    summary = summarize(records, "ranmask")
    assert summary["clean_accuracy"] == 0.5 and summary["abstained"] == 1 and summary["certified_accuracy"] == 0.5
    assert summary["certified_accuracy_at_radius"] == {"0": 0.5, "1": 0.25, "2": 0.25}
    assert summary["radii"] == {"0": 1, "1": 0, "2": 1}


def test_a_model_not_trained_for_smoothing_is_certified_only_when_asked_with_a_warning(trained_tiny_dir, tmp_path,
                                                                                       capsys):
    data = data_options(tmp_path)
    command = ["certify", "--model", trained_tiny_dir, *data, "--num-examples", "2", *SMALL]
    assert main([*command, "--output-dir", str(tmp_path / "a")]) == 2
    assert "records no smoothing" in capsys.readouterr().err
    assert main([*command, "--smoothing", "ranmask", "--output-dir", str(tmp_path / "b")]) == 0
    assert "was not trained for ranmask" in capsys.readouterr().err
    assert not json.loads((tmp_path / "b" / "results.json").read_text())["trained_for_smoothing"]


def test_a_bench_certifies_its_smoothing_cells_and_tabulates_the_bound(tmp_path, tiny_model_dir, capsys):
    options = dict(zip(*[iter(sentiment_words_data(tmp_path))] * 2))  # flag, value pairs
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "train_file": options["--train-file"], "dev_file": options["--dev-file"], "test_file": options["--test-file"],
        "text_column": "review", "label_column": "sentiment", "label_names": ["negative", "positive"],
        "max_length": 32, "learning_rate": 3e-3, "ranmask_samples": 8}))
    out = tmp_path / "grid"
    command = ["bench", "--task", "file", "--data-dir", options["--data-dir"], "--train-config", str(config),
               "--model", tiny_model_dir, "--methods", "standard,ranmask", "--attacks", "pwws", "--num-examples", "8",
               "--certify-num-examples", "6", "--epochs", "6", "--batch-size", "16", "--output-dir", str(out)]
    assert main(command) == 0
    cells = {cell["method"]: cell for cell in json.loads((out / "results.json").read_text())["cells"]}
    assert cells["standard"].get("certified_accuracy") is None  # only a smoothing defence is certified
    ranmask = cells["ranmask"]
    assert 0 < ranmask["certified_accuracy"] and ranmask["certified/num_examples"] == 6
    certified = out / "cells" / "file-ranmask-s0" / "certified"
    assert len((certified / CERTIFIED_FILE).read_text().splitlines()) == 6
    markdown = (out / "results.md").read_text()
    assert "| task | method | seeds | clean | pwws | certified | cost | CKA |" in markdown  # the methods at a glance
    standard = next(line for line in markdown.splitlines() if line.startswith("| file | standard | 1 |"))
    assert standard.split("|")[6].strip() == "-"  # the certified column of the methods at a glance
    assert "| task | method | seed | test acc | dev acc | under pwws | certified |" in markdown  # and every cell
    capsys.readouterr()
    assert main(command) == 0 and capsys.readouterr().out.count("skipped (finished before)") == 2
    assert main(["record", str(out), str(tmp_path / "record")]) == 0
    recorded = tmp_path / "record" / "cells" / "file-ranmask-s0" / "certified"
    assert (recorded / "results.json").read_text() == (certified / "results.json").read_text()
    again = {cell["method"]: cell for cell in json.loads((tmp_path / "record" / "results.json").read_text())["cells"]}
    assert again["ranmask"]["certified_accuracy"] == ranmask["certified_accuracy"]


def test_a_bench_certifies_against_every_source_its_attacks_use(tmp_path):
    from rift.arguments import BenchArguments
    from rift.bench import certify_arguments, training_arguments
    from rift.evaluation.records import grid

    for attacks, synonyms in ((["pwws", "genetic"], "counterfitted"),
                              (["pwws", "pwws-wordnet", "genetic"], "counterfitted,wordnet")):
        args = BenchArguments(methods=["ranmask"], attacks=attacks, certify_num_examples=5, output_dir=str(tmp_path))
        cell = grid(args)[0]
        certify = certify_arguments(training_arguments(args, cell), args, cell)
        assert certify.synonyms == synonyms and certify.num_examples == 5 and certify.model == str(cell.directory)
