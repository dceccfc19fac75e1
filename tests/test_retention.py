"""Feature retention: CKA and the InfoNCE bound give known answers, and training logs both at every evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rift.arguments import TrainingArguments
from rift.evaluation.retention import (
    representations,
    feature_retention,
    infonce_mutual_information,
    linear_cka,
    pooled_features,
)
from rift.models import load_classifier
from rift.data.batching import collate, encode_examples, model_inputs
from rift.training.run import train_run


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from more threads, and lose much on a busy machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def features(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + 2.0  # an offset: centring matters


def test_cka_known_answers():
    x = features(512, 16, 0)
    rotation, _ = torch.linalg.qr(features(16, 16, 1))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 7.5 * x @ rotation) == pytest.approx(1.0)  # orthogonal transform, isotropic scaling
    assert linear_cka(x, x @ rotation + 3.0) == pytest.approx(1.0)  # and a shift
    assert linear_cka(features(2000, 8, 2), features(2000, 8, 3)) < 0.05  # independent: about d / n
    assert linear_cka(x, torch.cat([x, features(512, 16, 4)], 1)) < 1.0  # extra unrelated dimensions lower it


def test_mutual_information_bound_separates_identical_from_shuffled_features():
    x = features(256, 32, 0)
    ceiling = math.log(128)  # the bound on the scored half cannot exceed log N
    identical = infonce_mutual_information(x, x)
    shuffled = infonce_mutual_information(x, x[torch.randperm(256, generator=torch.Generator().manual_seed(1))])
    noisy = infonce_mutual_information(x, x + 2.0 * features(256, 32, 2))
    assert ceiling - 0.2 < identical <= ceiling + 1e-6
    assert shuffled < 0.5
    assert shuffled < noisy < identical


def test_a_model_keeps_all_of_its_own_features(tiny_model_dir, tokenizer, sentiment_task):
    model = load_classifier(tiny_model_dir, sentiment_task.label_names)
    items = encode_examples(tokenizer, sentiment_task.splits["dev"], 32)
    # features come back in the items' order, whatever the batching
    torch.testing.assert_close(pooled_features(model, items, 0, 5), pooled_features(model, items, 0, 64))
    scores = feature_retention(model, model, items, 0, 16)
    assert scores["cka"] == pytest.approx(1.0)
    assert scores["mi_nce"] > math.log(len(items) // 2) - 0.5
    assert all(value == pytest.approx(1.0) for name, value in scores.items() if name.startswith("cka_"))


def test_token_states_are_every_layers_real_tokens_in_the_items_order(tiny_model_dir, tokenizer, sentiment_task):
    model = load_classifier(tiny_model_dir, sentiment_task.label_names).eval()
    items = encode_examples(tokenizer, sentiment_task.splits["dev"][:6], 32)
    found = representations(model, items, 0, 4, max_tokens=20)
    batch = collate(items, 0)
    with torch.no_grad():
        output = model.bert(**model_inputs(batch), output_hidden_states=True)
    real = batch["attention_mask"].bool()
    assert len(found) == 3 + len(output.hidden_states)
    # the mean feature is the one pooled_features gives, to the bit: one pass serves every feature
    assert torch.equal(found["mean"], pooled_features(model, items, 0, 4))
    for layer, states in enumerate(output.hidden_states):
        torch.testing.assert_close(found[f"layer_{layer}"], states[real][:20], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(found["cls"], output.last_hidden_state[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(found["pooler"], output.pooler_output, rtol=1e-5, atol=1e-5)
    # a model that changed keeps less than all of the pre-trained token states in its last layer
    changed = load_classifier(tiny_model_dir, sentiment_task.label_names).eval()
    with torch.no_grad():
        for dense in (changed.bert.encoder.layer[-1].intermediate.dense, changed.bert.encoder.layer[-1].output.dense):
            dense.weight.normal_(0.0, 2.0)
    scores = feature_retention(changed, model, items, 0, 4)
    assert scores["cka_layer_0"] == pytest.approx(1.0) and scores["cka_layer_2"] < 0.99


def retention_run(tmp_path: Path, model: str, **overrides) -> TrainingArguments:
    values = dict(output_dir=str(tmp_path / "run"), model=model, epochs=2, batch_size=16, learning_rate=3e-3,
                  max_length=32, logging_steps=1, eval_steps=3, seed=0, retention_examples=32)
    return TrainingArguments.build(**values | overrides)


def test_trainer_logs_retention_at_every_evaluation(tmp_path, tiny_model_dir, sentiment_task):
    args = retention_run(tmp_path, tiny_model_dir)
    metrics = train_run(args, task=sentiment_task, log=lambda *a: None)
    evaluations = metrics["evaluations"]
    assert len(evaluations) == 4  # 12 steps, one evaluation every 3
    assert all({"dev_cka", "dev_mi_nce"} <= e.keys() for e in evaluations)
    assert all(0.0 <= e["dev_cka"] <= 1.0 + 1e-6 and e["dev_mi_nce"] <= math.log(16) + 1e-6 for e in evaluations)
    best = next(e for e in evaluations if e["step"] == metrics["best_step"])
    saved = json.loads((Path(args.output_dir) / "metrics.json").read_text())
    assert saved["retention"] == {name.removeprefix("dev_"): best[name] for name in best
                                  if name.startswith(("dev_cka", "dev_mi_nce"))}
    # beside the mean feature: the first token, the head's input and every layer's token states (tiny BERT: 2)
    assert {"cka", "mi_nce", "cka_cls", "cka_pooler", "cka_layer_0", "cka_layer_1", "cka_layer_2"} == saved["retention"].keys()
    logged = [json.loads(line) for line in (Path(args.output_dir) / "train_log.jsonl").read_text().splitlines()]
    assert [row["eval/dev_cka"] for row in logged if "eval/dev_cka" in row] == [e["dev_cka"] for e in evaluations]
    assert sum("eval/dev_mi_nce" in row for row in logged) == 4

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((Path(args.output_dir) / "logs").rglob("events.out.tfevents*")).parent))
    events.Reload()
    assert {"eval/dev_cka", "eval/dev_mi_nce"} <= set(events.Tags()["scalars"])


def test_measuring_retention_does_not_change_training(tmp_path, tiny_model_dir, sentiment_task):
    measured = train_run(retention_run(tmp_path / "a", tiny_model_dir), task=sentiment_task, log=lambda *a: None)
    off = train_run(retention_run(tmp_path / "b", tiny_model_dir, retention_examples=0), task=sentiment_task,
                    log=lambda *a: None)
    assert "retention" not in off and all("dev_cka" not in e for e in off["evaluations"])
    assert [e["dev_accuracy"] for e in measured["evaluations"]] == [e["dev_accuracy"] for e in off["evaluations"]]
    assert measured["test_accuracy"] == off["test_accuracy"]
    log_a = (tmp_path / "a" / "run" / "train_log.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "run" / "train_log.jsonl").read_text().splitlines()
    losses = [[json.loads(line).get("train/loss") for line in log] for log in (log_a, log_b)]
    assert [v for v in losses[0] if v is not None] == [v for v in losses[1] if v is not None]
