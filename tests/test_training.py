"""The training loop on a tiny BERT: it learns, it resumes exactly, and it writes a plain Hugging Face checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rift.arguments import TrainingArguments
from rift.config import save_config
from rift.errors import RiftError
from rift.registry import names
from rift.data.sampling import ClassBalancedBatchSampler, ShuffledBatchSampler
from rift.training.run import changed_training_options, train_run
from transformers import TrainerCallback


def tiny_args(tmp_path: Path, model: str, **overrides) -> TrainingArguments:
    values = dict(
        output_dir=str(tmp_path / "run"), model=model, epochs=2, batch_size=16, learning_rate=3e-3,
        max_length=32, logging_steps=1, seed=3, warmup_ratio=0.1,
    )
    values.update(overrides)
    return TrainingArguments.build(**values)


def test_tiny_model_lowers_its_loss_and_writes_a_plain_checkpoint(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, epochs=8)
    metrics = train_run(args, task=sentiment_task)
    out = Path(args.output_dir)
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [row["train/loss"] for row in logged if "train/loss" in row]
    assert len(losses) == 8 * 6
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dev_accuracy"] == metrics["dev_accuracy"] == max(e["dev_accuracy"] for e in metrics["evaluations"])
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    assert (out / "rift_config.yaml").exists() and (out / "model.safetensors").exists()
    # safetensors only: no pickle beside the model, no staging folder or temporary file left
    assert not [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl") or p.name.startswith(".")]
    assert list((out / "logs").rglob("events.out.tfevents*")), "TensorBoard logs are written"
    assert [row["step"] for row in logged if "train/loss" in row] == list(range(1, 8 * 6 + 1))

    # the checkpoint is a plain transformers classifier: no rift code needed to use it
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(out), device=-1)
    result = classify("the movie was really wonderful .")[0]
    assert result["label"] in ("negative", "positive")


def test_best_checkpoint_is_chosen_on_dev(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, epochs=3, eval_steps=2)
    metrics = train_run(args, task=sentiment_task)
    best = max(metrics["evaluations"], key=lambda e: e["dev_accuracy"])
    assert metrics["best_step"] == best["step"]
    # the saved model is the best one: its dev accuracy is the best dev accuracy
    from rift.evaluation.accuracy import accuracy
    from rift.models import load_classifier, load_tokenizer
    from rift.data.batching import encode_examples

    model = load_classifier(args.output_dir)
    items = encode_examples(load_tokenizer(args.output_dir), sentiment_task.splits["dev"], 32)
    assert accuracy(model, items, 0, 64) == pytest.approx(best["dev_accuracy"])


class Crash(Exception):
    pass


class CrashAtStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 8:  # mid second epoch; the state of step 7 is on disk
            raise Crash


def assert_same_weights(first: Path, second: Path) -> None:
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


RESUMED_METHODS = [
    ("standard", {}),
    # the adversary's random starts, RIFT's heads and its teacher-feature cache, and accumulated gradients resume too
    ("ascc", dict(ascc_steps=2, gradient_accumulation_steps=2, batch_size=8)),
    ("rift", dict(ascc_steps=2, gradient_accumulation_steps=2, batch_size=8)),
    ("rift-uncond", dict(ascc_steps=2)),
    ("rift-clean", {}),
    # the pre-trained anchors: L2-SP's starting weights, Mixout's random masks
    ("l2sp", dict(ascc_steps=2)),
    ("mixout", dict(ascc_steps=2)),
    # the field's defences: random starts (pgd, freelb), InfoBERT's critic and its draws, A2T's clean first epoch,
    # DNE's Dirichlet draws
    ("pgd", dict(adv_steps=2)),
    ("freelb", dict(adv_steps=2)),
    ("freelb++", dict(adv_steps=2)),
    ("infobert", dict(adv_steps=2)),
    ("a2t", {}),
    ("dne", dict(dne_steps=1, dne_neighbours=8)),
    # randomised smoothing: each step's copies drawn anew
    ("safer", dict(safer_samples=4)),
    ("ranmask", dict(ranmask_samples=4)),
]


def test_resume_is_checked_for_every_registered_method():
    assert sorted(method for method, _ in RESUMED_METHODS) == sorted(names("objective"))


@pytest.mark.parametrize("method, options", RESUMED_METHODS)
def test_resumed_run_equals_uninterrupted_run(tmp_path, tiny_model_dir, sentiment_task, method, options):
    common = dict(epochs=2, save_steps=1, eval_steps=0, method=method) | options
    straight = tiny_args(tmp_path / "a", tiny_model_dir, **common)
    expected = train_run(straight, task=sentiment_task)

    interrupted = tiny_args(tmp_path / "b", tiny_model_dir, **common)
    with pytest.raises(Crash):
        train_run(interrupted, task=sentiment_task, callbacks=[CrashAtStep()])
    checkpoints = sorted((Path(interrupted.output_dir) / "resume").glob("checkpoint-*"))
    assert [path.name for path in checkpoints] == ["checkpoint-7"]
    state = json.loads((checkpoints[0] / "trainer_state.json").read_text())
    assert state["global_step"] == 7 and 1 < state["epoch"] < 2
    # a kill while the next checkpoint was being written leaves it incomplete: rift's own state (written first) and a
    # model cut short, no trainer_state.json (the Trainer writes it last); resuming takes the newest complete one
    partial = Path(interrupted.output_dir) / "resume" / "checkpoint-8"
    partial.mkdir()
    shutil.copy(checkpoints[0] / "rift_run_state.json", partial)
    (partial / "model.safetensors").write_bytes(b"cut short")

    # the interrupted run's folder may move, and how often the resumed run saves its state is its own choice
    (tmp_path / "b").rename(tmp_path / "moved")
    resumed_args = tiny_args(tmp_path / "moved", tiny_model_dir, resume=True, **common | dict(save_steps=3))
    resumed = train_run(resumed_args, task=sentiment_task)
    assert resumed["steps"] == expected["steps"] == 12
    # bit for bit: the same evaluations, test accuracy, weights and logged losses
    assert resumed["evaluations"] == expected["evaluations"]
    assert resumed["test_accuracy"] == expected["test_accuracy"]
    assert_same_weights(Path(straight.output_dir), Path(resumed_args.output_dir))
    logged = [[json.loads(line) for line in (Path(run.output_dir) / "train_log.jsonl").read_text().splitlines()]
              for run in (straight, resumed_args)]
    losses = [{row["step"]: row["train/loss"] for row in log if "train/loss" in row} for log in logged]
    assert losses[1] == losses[0]  # the log continues: steps 1-7 before the crash, 8-12 after


class CrashAfterEpochCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 6:  # the first epoch's last step is saved; its evaluation comes next
            raise Crash


def test_a_run_resumed_from_an_epoch_end_checkpoint_makes_its_evaluation_as_the_uninterrupted_run_did(
        tmp_path, tiny_model_dir, sentiment_task):
    # the evaluation draws from the random states (each data loader draws a seed) after the checkpoint kept them:
    # the resumed run must make those draws too, or the second epoch's dropout differs
    common = dict(epochs=2, save_steps=1, eval_steps=0, method="standard")
    straight = tiny_args(tmp_path / "a", tiny_model_dir, **common)
    expected = train_run(straight, task=sentiment_task)
    interrupted = tiny_args(tmp_path / "b", tiny_model_dir, **common)
    with pytest.raises(Crash):
        train_run(interrupted, task=sentiment_task, callbacks=[CrashAfterEpochCheckpoint()])
    saved = json.loads((Path(interrupted.output_dir) / "resume" / "checkpoint-6" / "rift_run_state.json").read_text())
    assert saved["evaluations"] == []  # the epoch's evaluation is not in it
    resumed = train_run(tiny_args(tmp_path / "b", tiny_model_dir, resume=True, **common), task=sentiment_task)
    assert [e["step"] for e in resumed["evaluations"]] == [6, 12]
    assert resumed["evaluations"] == expected["evaluations"]
    assert_same_weights(Path(straight.output_dir), Path(interrupted.output_dir))


def test_existing_run_is_not_overwritten(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, epochs=1)
    train_run(args, task=sentiment_task)
    with pytest.raises(RiftError, match="already holds a rift run"):
        train_run(args, task=sentiment_task)


def test_resume_refuses_changed_options(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, epochs=1)
    train_run(args, task=sentiment_task)
    changed = tiny_args(tmp_path, tiny_model_dir, epochs=1, learning_rate=0.5, resume=True)
    with pytest.raises(RiftError, match="learning_rate"):
        train_run(changed, task=sentiment_task)


def test_options_newer_than_a_saved_run_count_as_their_default(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, epochs=1)
    train_run(args, task=sentiment_task)
    saved = Path(args.output_dir) / "rift_config.yaml"
    config = yaml.safe_load(saved.read_text())
    del config["min_train_words"]  # as written before the option existed
    saved.write_text(yaml.safe_dump(config))
    assert changed_training_options(tiny_args(tmp_path, tiny_model_dir, epochs=1, resume=True), saved) == []
    assert changed_training_options(tiny_args(tmp_path, tiny_model_dir, epochs=1, min_train_words=3), saved) == ["min_train_words"]


def test_options_a_method_never_reads_do_not_forbid_reusing_its_run(tmp_path):
    def saved_run(**options):
        args = TrainingArguments.build(unread="drop", output_dir=str(tmp_path / "run"), model="tiny", **options)
        save_config(args, tmp_path / "rift_config.yaml")
        return tmp_path / "rift_config.yaml"

    def changes(**options):
        return changed_training_options(TrainingArguments.build(unread="drop", output_dir=str(tmp_path / "run"), model="tiny", **options), saved)

    saved = saved_run(method="standard", ascc_objective="kl", beta=1.0)
    assert changes(method="standard", ascc_objective="ce", beta=5.0, alpha=0.5, l2sp_weight=1.0) == []
    assert changes(method="standard", learning_rate=1.0) == ["learning_rate"]
    assert changes(method="ascc", ascc_objective="ce") == ["ascc_objective", "method"]
    saved = saved_run(method="ascc", ascc_objective="kl")
    assert changes(method="ascc", ascc_objective="kl", alpha=0.5, tau=1.0, mixout_probability=0.5) == []
    assert changes(method="ascc", ascc_objective="ce", beta=5.0) == ["ascc_objective", "beta"]


def test_shuffled_batches_are_seeded_per_epoch_and_cover_everything():
    sampler = ShuffledBatchSampler(10, 4, seed=1)
    sampler.start_epoch(0)
    first = list(sampler)
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(i for b in first for i in b) == list(range(10))
    assert list(sampler) == first
    sampler.start_epoch(1)
    assert list(sampler) != first


def test_class_balanced_batches_have_equal_counts():
    labels = [0] * 30 + [1] * 11 + [2] * 20
    sampler = ClassBalancedBatchSampler(labels, batch_size=7, seed=0)  # 2 per class
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        counts = [sum(labels[i] == c for i in batch) for c in range(3)]
        assert counts == [2, 2, 2]
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == len(flat)


@pytest.mark.parametrize("piece, damage", [("rng_state.pth", "remove"), ("rng_state.pth", "truncate"),
                                           ("optimizer.pt", "truncate"), ("model.safetensors", "truncate")])
def test_a_missing_or_damaged_piece_of_resume_state_is_one_line(tmp_path, tiny_model_dir, sentiment_task, piece,
                                                                damage):
    common = dict(epochs=2, save_steps=1, eval_steps=0)
    interrupted = tiny_args(tmp_path, tiny_model_dir, **common)
    with pytest.raises(Crash):
        train_run(interrupted, task=sentiment_task, callbacks=[CrashAtStep()])
    [checkpoint] = (Path(interrupted.output_dir) / "resume").glob("checkpoint-*")
    path = checkpoint / piece
    if damage == "remove":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    log = (Path(interrupted.output_dir) / "train_log.jsonl").read_text()
    resumed = tiny_args(tmp_path, tiny_model_dir, resume=True, **common)
    with pytest.raises(RiftError, match=rf"^cannot resume from {checkpoint}: {piece} is "
                                        rf"{'missing' if damage == 'remove' else 'damaged'}"):
        train_run(resumed, task=sentiment_task)
    assert (Path(interrupted.output_dir) / "train_log.jsonl").read_text() == log  # refused before anything changed
