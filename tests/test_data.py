"""Tests of rift.data against the real shared datasets and small user files made in tmp_path."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from rift.data import (
    Example,
    load_task,
    resolve_data_dir,
    stratified_split,
    stratified_subset,
    task_names,
)
from rift.data.tasks import base as tasks_module
from rift.errors import RiftError


def quiet(_: str) -> None:
    pass


def counts(examples: list[Example]) -> dict[int, int]:
    return dict(sorted(Counter(e.label for e in examples).items()))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def imdb():
    return load_task("imdb", log=quiet)


# ---- resolve_data_dir ----


def test_resolve_data_dir_finds_shared_data_from_repo_root():
    assert (resolve_data_dir() / "README.md").is_file()


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir()
    env.mkdir()
    (tmp_path / "work" / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.setenv("RIFT_DATA_DIR", str(env))
    assert resolve_data_dir(explicit) == explicit
    assert resolve_data_dir() == env
    monkeypatch.delenv("RIFT_DATA_DIR")
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_data_dir() == tmp_path / "work" / "shared" / "data"  # ./shared/data before ../shared/data
    (tmp_path / "work" / "shared" / "data").rmdir()
    assert resolve_data_dir() == tmp_path / "shared" / "data"
    (tmp_path / "shared" / "data").rmdir()
    monkeypatch.setattr(tasks_module, "_REPO_ROOT", tmp_path / "nowhere" / "repo")
    with pytest.raises(RiftError, match="no data folder found.*--data-dir or RIFT_DATA_DIR"):
        resolve_data_dir()


def test_resolve_data_dir_missing(tmp_path, monkeypatch):
    with pytest.raises(RiftError, match=r"missing \(from --data-dir\) does not exist"):
        resolve_data_dir(tmp_path / "missing")
    monkeypatch.setenv("RIFT_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(RiftError, match=r"missing \(from RIFT_DATA_DIR\) does not exist"):
        resolve_data_dir()


def test_missing_shared_dataset_file(tmp_path):
    with pytest.raises(RiftError, match=r"sst2/train_full.tsv not found.*--data-dir or RIFT_DATA_DIR"):
        load_task("sst2", tmp_path, log=quiet)


# ---- built-in datasets ----


def test_sst2():
    task = load_task("sst2", log=quiet)
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [67349, 872, 1821]
    assert task.label_names == ["negative", "positive"] and not task.is_pair
    assert counts(task.splits["dev"]) == {0: 428, 1: 444}
    assert task.splits["train"][0].text == "hide new secretions from the parental units"  # trailing space stripped


def test_imdb(imdb):
    assert [len(imdb.splits[s]) for s in ("train", "dev", "test")] == [20000, 5000, 25000]
    assert counts(imdb.splits["test"]) == {0: 12500, 1: 12500}
    # the train/dev lists of Jia et al. are near-balanced, not exactly: 9,982/10,018 and 2,518/2,482
    assert counts(imdb.splits["train"]) == {0: 9982, 1: 10018}
    assert counts(imdb.splits["dev"]) == {0: 2518, 1: 2482}
    assert not any("<br" in e.text or "  " in e.text for e in imdb.splits["dev"])


def test_mr():
    task = load_task("mr", log=quiet)
    sizes = [len(task.splits[s]) for s in ("train", "dev", "test")]
    assert sizes == [8530, 1066, 1066] and sum(sizes) == 10662
    expected = [{0: 4265, 1: 4265}, {0: 533, 1: 533}, {0: 533, 1: 533}]
    assert [counts(task.splits[s]) for s in ("train", "dev", "test")] == expected
    assert "amélie's" in " ".join(e.text for s in task.splits.values() for e in s)  # UTF-8 decoded


def test_snli():
    task = load_task("snli", log=quiet)
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [8842, 1000, 9824]
    assert task.is_pair and task.label_names == ["entailment", "neutral", "contradiction"]
    assert counts(task.splits["dev"]) == {0: 338, 1: 329, 2: 333}  # validation is 3,329 / 3,235 / 3,278
    quoted = [e for e in task.splits["test"] if e.text_pair.startswith("The sign the woman is holding states")]
    assert quoted[0].text_pair == 'The sign the woman is holding states that "Freedom is free."'  # CSV-style quotes


def test_agnews():
    task = load_task("agnews", log=quiet)
    assert task.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert [counts(task.splits[s]) for s in ("train", "dev", "test")] == [
        dict.fromkeys(range(4), 1520),
        dict.fromkeys(range(4), 190),
        dict.fromkeys(range(4), 190),
    ]
    texts = [e.text for s in task.splits.values() for e in s]
    assert not any("\\" in t for t in texts)
    assert any(t.startswith("Poor? Who #39;s poor? Poverty is down.") for t in texts)  # no "poor?. Poverty"
    assert any(t.startswith("Fears for T N pension after talks. Unions representing") for t in texts)


def test_split_does_not_depend_on_seed_but_subsets_do():
    for name in ("mr", "snli", "agnews"):
        a, b = load_task(name, seed=0, log=quiet), load_task(name, seed=1, log=quiet)
        assert a.splits == b.splits
    a = load_task("mr", seed=0, max_train_examples=100, log=quiet)
    b = load_task("mr", seed=1, max_train_examples=100, log=quiet)
    assert a.splits["train"] != b.splits["train"]
    assert a.splits["train"] == load_task("mr", seed=0, max_train_examples=100, log=quiet).splits["train"]
    assert counts(a.splits["train"]) == {0: 50, 1: 50}


def test_max_examples_logs_one_line_per_subsampled_split():
    lines = []
    task = load_task("sst2", seed=3, max_train_examples=2000, max_test_examples=5000, log=lines.append)
    assert lines == ["train: 2000 of 67349 examples (seeded, stratified)"]
    assert len(task.splits["train"]) == 2000 and len(task.splits["test"]) == 1821
    assert counts(task.splits["train"]) == {0: 884, 1: 1116}  # 29,780 : 37,569 of 67,349


def test_min_train_words_filters_training_phrases_before_the_subset(tmp_path):
    lines = []
    task = load_task("sst2", seed=0, min_train_words=8, max_train_examples=1000, log=lines.append)
    # 31,105 of SST-2's 67,349 training phrases have 8 or more words (counted with awk on train_full.tsv)
    assert lines == ["train: 31105 of 67349 examples have at least 8 words",
                     "train: 1000 of 31105 examples (seeded, stratified)"]
    assert min(len(e.text.split()) for e in task.splits["train"]) == 8
    assert len(task.splits["dev"]) == 872 and min(len(e.text.split()) for e in task.splits["dev"]) < 8  # untouched
    pairs = write(tmp_path / "pairs.jsonl", '{"p": "a b", "h": "c", "y": "x"}\n{"p": "a b", "h": "c d", "y": "z"}\n'
                                             '{"p": "a b c", "h": "d", "y": "x"}\n')
    kept = load_task("file", train_file=pairs, dev_file=pairs, test_file=pairs, text_column="p", text_pair_column="h",
                     label_column="y", min_train_words=4, log=quiet).splits["train"]
    assert [(e.text, e.text_pair) for e in kept] == [("a b", "c d"), ("a b c", "d")]  # both texts of a pair count
    with pytest.raises(RiftError, match="no training example has at least 6 words"):
        load_task("file", train_file=pairs, dev_file=pairs, test_file=pairs, text_column="p", text_pair_column="h",
                  label_column="y", min_train_words=6, log=quiet)


def test_bad_numbers_are_refused_before_any_data_is_read(tmp_path):
    missing = tmp_path / "missing"  # no data folder: an error about it would mean the data was about to be read
    with pytest.raises(RiftError, match="min_train_words must be at least 1, got 0"):
        load_task("sst2", missing, min_train_words=0, log=quiet)
    with pytest.raises(RiftError, match="max_dev_examples must be at least 1, got -3"):
        load_task("sst2", missing, max_dev_examples=-3, log=quiet)


def test_unknown_task_and_file_options_on_builtin(tmp_path):
    assert "file" in task_names() and "sst2" in task_names()
    with pytest.raises(RiftError, match="unknown task 'sst3'"):
        load_task("sst3")
    with pytest.raises(RiftError, match="^--train-file is not read by --task sst2; it is an option of --task file$"):
        load_task("sst2", train_file=tmp_path / "x.csv")
    with pytest.raises(RiftError, match="^--text-column: cannot use 3"):
        load_task("file", train_file=tmp_path / "x.csv", text_column=3)


# ---- stratified subsets and splits ----


def make_examples(per_class: dict[int, int]) -> list[Example]:
    return [Example(f"{label}-{i}", label) for label, n in per_class.items() for i in range(n)]


def test_stratified_subset():
    examples = make_examples({0: 60, 1: 30, 2: 10})
    subset = stratified_subset(examples, 10, seed=0)
    assert counts(subset) == {0: 6, 1: 3, 2: 1}
    assert counts(stratified_subset(examples, 7, seed=0)) == {0: 4, 1: 2, 2: 1}  # 4.2, 2.1, 0.7 -> largest remainder
    assert subset == stratified_subset(examples, 10, seed=0) != stratified_subset(examples, 10, seed=1)
    assert [e.label for e in subset] != sorted(e.label for e in subset)  # shuffled, not grouped by class
    assert stratified_subset(examples, None, seed=0) == examples
    assert stratified_subset(examples, 1000, seed=0) == examples


def test_stratified_split():
    examples = make_examples({0: 61, 1: 29}) + [Example("dup", 1)] * 10  # equal examples are still distinct items
    parts = stratified_split(examples, (0.8, 0.1, 0.1), seed=0)
    assert [len(p) for p in parts] == [80, 10, 10]
    assert sorted(e.text for p in parts for e in p) == sorted(e.text for e in examples)
    assert [counts(p) for p in parts] == [{0: 49, 1: 31}, {0: 6, 1: 4}, {0: 6, 1: 4}]
    assert parts == stratified_split(examples, (0.8, 0.1, 0.1), seed=0)
    assert parts != stratified_split(examples, (0.8, 0.1, 0.1), seed=1)


# ---- user files ----


def test_csv_with_string_labels(tmp_path):
    train = write(tmp_path / "train.csv", 'text,label\n"good, really",pos\nbad,neg\nfine,pos\n')
    dev = write(tmp_path / "dev.csv", "text,label\nawful,neg\n")
    test = write(tmp_path / "test.csv", "text,label\ngreat,pos\n")
    task = load_task("file", train_file=train, dev_file=dev, test_file=test, log=quiet)
    assert task.label_names == ["neg", "pos"] and task.num_labels == 2 and not task.is_pair
    assert task.splits["train"] == [Example("good, really", 1), Example("bad", 0), Example("fine", 1)]
    assert task.splits["dev"] == [Example("awful", 0)]


def test_integer_labels_and_carved_dev_test(tmp_path):
    train = write(tmp_path / "train.tsv", "text\tlabel\n" + "".join(f"text {i}\t{i % 3}\n" for i in range(30)))
    lines = []
    task = load_task("file", train_file=train, log=lines.append)
    assert task.label_names == ["0", "1", "2"] and counts(task.splits["train"]) == {0: 8, 1: 8, 2: 8}
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [24, 3, 3]
    assert lines == [f"file: no dev or test file given; each is a stratified 10% of {train} (fixed split seed 0)"]


def test_integer_labels_are_ids_as_given(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,1\nb,2\n")
    lines = []
    task = load_task("file", train_file=train, dev_file=train, test_file=train, log=lines.append)
    assert task.label_names == ["0", "1", "2"] and [e.label for e in task.splits["dev"]] == [1, 2]
    assert lines == ["file: integer labels are used as ids; no training example has id 0"]


def test_label_names_accept_names_and_indices(tmp_path):
    labels = ["bad", 1, "0", "good"] * 5
    mixed = write(tmp_path / "mixed.jsonl", "".join(json.dumps({"text": f"t{i}", "label": lab}) + "\n"
                                                    for i, lab in enumerate(labels)))
    task = load_task("file", train_file=mixed, label_names=["bad", "good"], log=quiet)
    assert task.label_names == ["bad", "good"]
    assert counts(task.splits["train"] + task.splits["dev"] + task.splits["test"]) == {0: 10, 1: 10}
    with pytest.raises(RiftError, match=r"mixed.jsonl, line 2: label 1 is not one of: 'bad', '0'"):
        load_task("file", train_file=mixed, label_names=["bad"], log=quiet)


def test_text_pair_column_and_gzip(tmp_path):
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "gold": ["yes", "no"][i % 2]} for i in range(20)]
    train = tmp_path / "nli.jsonl.gz"
    train.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    task = load_task("file", train_file=train, text_column="premise", text_pair_column="hypothesis",
                     label_column="gold", log=quiet)
    assert task.is_pair and task.label_names == ["no", "yes"]
    assert Example("p0", 1, "h0") in task.splits["train"] + task.splits["dev"] + task.splits["test"]


BAD_INPUTS = [  # (file name, content, the expected message after the file's path)
    ("missing_column.csv", "sentence,label\nhi,0\n", ": no column 'text'; the columns are: 'sentence', 'label'"),
    ("empty_text.csv", "text,label\nok,0\n  ,1\n", ", line 3: text column 'text' is empty"),
    ("multiline.csv", 'text,label\n"two\nlines",0\n"",1\n', ", line 4: text column 'text' is empty"),
    ("fields.tsv", "text\tlabel\na\t0\nb\t1\textra\n", ", line 3: 3 fields, but the header has 2"),
    ("bad.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 1\n', ", line 2: malformed JSON"),
    ("array.jsonl", '[{"text": "a", "label": 0}]\n', ", line 1: expected one JSON object per line, got a list"),
    ("array.json", '[{"text": "a", "label": 0}, "b"]\n', ", item 2: expected a JSON object, got a str"),
    ("nofield.jsonl", '{"text": "a", "label": 0}\n{"txt": "b"}\n', ", line 2: no field 'text'; the fields are: 'txt'"),
    ("null.jsonl", '{"text": "a", "label": 0}\n{"text": null, "label": 1}\n', ", line 2: text column 'text' must be"),
    ("bool.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": true}\n', ", line 2: a label must be a string"),
    ("no_label.csv", "text,label\na,0\nb,\n", ", line 3: the label is empty"),
    ("one_class.csv", "text,label\na,0\nb,0\n", ": the train split needs examples of at least two classes"),
    ("minus_one.csv", "text,label\na,-1\nb,1\n", ": label '-1' is a number but not a class id (0, 1, 2, ...)"),
    ("floats.csv", "text,label\na,0\nb,1.0\nc,1\n", ": label '1.0' is a number but not a class id"),
    ("padded.csv", "text,label\na,00\nb,1\nc,0\n", ": label '00' is a number but not a class id"),
    ("same_column.csv", "text,label,text\na,0,b\nc,1,d\n", ", line 1: the header names column 'text' more than once"),
    ("header_only.csv", "text,label\n", ": the file holds no examples"),
    ("empty.jsonl", "\n", ": the file holds no examples"),
    ("data.txt", "text,label\n", ": unknown file type"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_train_file(tmp_path, name, content, message):
    dev = write(tmp_path / "dev.csv", "text,label\na,0\n")
    test = write(tmp_path / "test.csv", "text,label\nb,0\n")
    train = write(tmp_path / name, content)
    with pytest.raises(RiftError) as error:
        load_task("file", train_file=train, dev_file=dev, test_file=test, log=quiet)
    assert str(error.value).startswith(f"{train}{message}")
    assert "\n" not in str(error.value)


def test_texts_that_span_lines_are_counted_in_a_warning(tmp_path):
    # a stray quote in row 2 swallows the rows after it, up to the next quote, into one text
    train = write(tmp_path / "train.csv", 'text,label\na,0\n"b,1\nc,0\nd",1\ne,0\nf,1\n')
    lines = []
    task = load_task("file", train_file=train, dev_file=train, test_file=train, log=lines.append)
    assert len(task.splits["train"]) == 4
    assert f"warning: {train}: 1 of 4 texts span several lines (a quoted field with line breaks, or a stray quote " \
           "that merged the rows after it)" in lines


def test_bad_labels(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,neg\nb,pos\n")
    dev = write(tmp_path / "dev.csv", "text,label\nc,neg\nd,neutral\n")
    with pytest.raises(RiftError, match=r"dev.csv, line 3: label 'neutral' is not one of: 'neg', 'pos'"):
        load_task("file", train_file=train, dev_file=dev, test_file=train, log=quiet)
    with pytest.raises(RiftError, match=r"train.csv, line 2: label 'neg' is not one of: 'bad', 'good', '0', '1'"):
        load_task("file", train_file=train, label_names=["bad", "good"], log=quiet)
    ints = write(tmp_path / "ints.csv", "text,label\na,0\nb,1\n")
    with pytest.raises(RiftError, match=r"dev.csv, line 2: label 'neg' is not one of: '0', '1'"):
        load_task("file", train_file=ints, dev_file=dev, test_file=ints, log=quiet)
    with pytest.raises(RiftError, match=r"ints.csv, line 3: label '1' is not one of: 'only', '0'"):
        load_task("file", train_file=ints, label_names=["only"], log=quiet)


def test_empty_text_pair(tmp_path):
    train = write(tmp_path / "pairs.tsv", "premise\thypothesis\tlabel\na\tb\t0\nc\t \t1\n")
    with pytest.raises(RiftError, match=r"pairs.tsv, line 3: text pair column 'hypothesis' is empty"):
        load_task("file", train_file=train, text_column="premise", text_pair_column="hypothesis", log=quiet)


def test_missing_files(tmp_path):
    with pytest.raises(RiftError, match="needs a training file"):
        load_task("file", log=quiet)
    with pytest.raises(RiftError, match=r"nothere.csv: file not found"):
        load_task("file", train_file=tmp_path / "nothere.csv", log=quiet)
    train = write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")
    with pytest.raises(RiftError, match=r"dev.jsonl: file not found"):
        load_task("file", train_file=train, dev_file=tmp_path / "dev.jsonl", log=quiet)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nok,0\ncafé,1\n".encode("latin-1"))
    with pytest.raises(RiftError, match=r"latin1.csv, line 3: not valid UTF-8 \(byte 0xe9 at byte offset 19\)"):
        load_task("file", train_file=path, log=quiet)


def test_too_small_to_carve(tmp_path):
    train = write(tmp_path / "tiny.csv", "text,label\na,0\nb,1\nc,0\n")
    with pytest.raises(RiftError, match=r"tiny.csv: too few examples to carve a dev split"):
        load_task("file", train_file=train, log=quiet)


def test_hugging_face_formats_read_like_csv(tmp_path):
    import datasets

    rows = [{"sentence": "good, really", "label": 1}, {"sentence": "bad", "label": 0}, {"sentence": "fine", "label": 1}]
    expected = [Example("good, really", 1), Example("bad", 0), Example("fine", 1)]
    dataset = datasets.Dataset.from_list(rows)
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "saved-dict"))
    dataset.to_parquet(str(tmp_path / "train.parquet"))
    (tmp_path / "array.json").write_text(json.dumps(rows, indent=1))
    test = write(tmp_path / "test.csv", "sentence,label\ngreat,1\n")
    for train in ("saved", "saved-dict", "train.parquet", "array.json"):
        task = load_task("file", train_file=tmp_path / train, dev_file=test, test_file=test, text_column="sentence",
                         log=quiet)
        assert task.splits["train"] == expected, train
        assert task.label_names == ["0", "1"]
    with pytest.raises(RiftError, match="no column 'text'; the columns are: 'sentence', 'label'"):
        load_task("file", train_file=tmp_path / "saved", log=quiet)
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(RiftError, match="not a folder written by datasets.save_to_disk"):
        load_task("file", train_file=tmp_path / "empty-folder", log=quiet)
    (tmp_path / "broken.json").write_text('[{"sentence": "a", "label": 1}, 3]')
    with pytest.raises(RiftError, match=r"broken.json, item 2: expected a JSON object, got a int"):
        load_task("file", train_file=tmp_path / "broken.json", text_column="sentence", log=quiet)


def test_eval_and_attacks_read_only_the_file_they_score(tmp_path):
    test = write(tmp_path / "test.csv", "text,label\ngreat,pos\nawful,neg\n")
    task = load_task("file", test_file=test, scored_split="test", log=quiet)
    assert task.splits["test"] == [Example("great", 1), Example("awful", 0)] and task.splits["train"] == []
    with pytest.raises(RiftError, match=r"needs the file of the dev split \(--dev-file\)"):
        load_task("file", test_file=test, scored_split="dev", log=quiet)
    with pytest.raises(RiftError, match=r"needs a training file \(--train-file\)"):
        load_task("file", test_file=test, log=quiet)
