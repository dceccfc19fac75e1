"""Behaviours of training that users' numbers depend on, asserted through a whole training run rather than through
the loop's internals: every test goes through ``run_training``, the one place that knows which loop runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rift.arguments import TrainingArguments
from rift.attacks.ascc import masked_softmax
from rift.evaluation.accuracy import accuracy
from rift.evaluation.retention import linear_cka, pooled_features
from rift.evaluation.robustness import sample_indices
from rift.models import classify, load_classifier, load_tokenizer
from rift.objectives import build_objective
from rift.data.batching import encode_examples, model_inputs
from rift.adversaries.context import TrainingContext
from rift.data.sampling import ClassBalancedBatchSampler
from rift.training.hf_trainer import term_gradient_norms
from rift.training.run import train_run


def tiny_args(tmp_path: Path, model: str, **overrides) -> TrainingArguments:
    values = dict(output_dir=str(tmp_path / "run"), model=model, epochs=2, batch_size=16, learning_rate=3e-3,
                  max_length=32, seed=0, ascc_steps=2, logging_steps=1, retention_examples=0)
    return TrainingArguments.build(unread="drop", **values | overrides)


def run_training(args: TrainingArguments, task, objective=None) -> dict:
    """Trains as ``rift train`` does, with ``objective`` (built from ``args`` when None) and returns the metrics."""
    return train_run(args, task=task, objective=objective, log=lambda *a: None)


class Recording:
    """Wraps an objective's ``loss`` to record what every training step saw: the examples of the batch, the step the
    run's context reported, and whether the objective's own parameters held a gradient from earlier batches."""

    def __init__(self, objective):
        self.objective, self.batches, self.steps, self.stale_gradients = objective, [], [], []
        original_setup, original_loss = objective.setup, objective.loss

        def setup(context):
            original_setup(context)
            self.context = context
            self.initial = {name: p.detach().clone() for name, p in objective.named_parameters()}

        def loss(model, batch):
            self.batches.append(batch["index"].tolist())
            self.steps.append(self.context.current_step())
            self.stale_gradients.append(any(p.grad is not None and p.grad.abs().sum() > 0
                                            for p in objective.parameters()))
            return original_loss(model, batch)

        objective.setup, objective.loss = setup, loss


def set_up_objective(args: TrainingArguments, task, current_step=lambda: 0):
    """The objective of ``args`` set up on its model as a run would, without training: (objective, model, batch of
    the first 16 training examples)."""
    tokenizer = load_tokenizer(args.model)
    model = load_classifier(args.model, task.label_names)
    items = encode_examples(tokenizer, task.splits["train"], args.max_length)
    objective = build_objective(args)
    objective.setup(TrainingContext(model=model, tokenizer=tokenizer, num_labels=task.num_labels,
                                    train_examples=task.splits["train"], train_items=items,
                                    device=torch.device("cpu"), log=lambda *a: None, current_step=current_step))
    return objective, model.eval(), objective.collate(items[:16], tokenizer.pad_token_id)


def recorded_run(args: TrainingArguments, task) -> Recording:
    recording = Recording(build_objective(args))
    run_training(args, task, recording.objective)
    return recording


def test_rift_projection_heads_are_trained_by_the_optimiser(tmp_path, tiny_model_dir, sentiment_task):
    recording = recorded_run(tiny_args(tmp_path, tiny_model_dir, method="rift", epochs=1), sentiment_task)
    heads = {name: p for name, p in recording.objective.named_parameters() if "heads" in name}
    assert heads and set(heads) == set(recording.initial)
    unchanged = [name for name, p in heads.items() if torch.equal(p.detach().cpu(), recording.initial[name].cpu())]
    assert unchanged == []
    # each optimiser step starts from cleared gradients, the heads' as much as the model's
    assert len(recording.stale_gradients) > 1 and not any(recording.stale_gradients)


def test_test_accuracy_is_that_of_the_best_dev_checkpoint_even_when_it_is_not_the_last(tmp_path, tiny_model_dir,
                                                                                    sentiment_task):
    # a run whose dev accuracy peaks before its last evaluation
    args = tiny_args(tmp_path, tiny_model_dir, epochs=6, eval_steps=2, seed=0)
    metrics = run_training(args, sentiment_task)
    last = metrics["evaluations"][-1]
    assert metrics["best_step"] != last["step"], "the test needs a run whose best evaluation is not its last"
    assert last["dev_accuracy"] < metrics["dev_accuracy"]
    tokenizer = load_tokenizer(args.output_dir)
    saved = load_classifier(args.output_dir)
    test_items = encode_examples(tokenizer, sentiment_task.splits["test"], 32)
    dev_items = encode_examples(tokenizer, sentiment_task.splits["dev"], 32)
    assert accuracy(saved, dev_items, 0, 64) == pytest.approx(metrics["dev_accuracy"])
    assert metrics["test_accuracy"] == pytest.approx(accuracy(saved, test_items, 0, 64))


def test_class_balanced_sampler_reshuffles_per_epoch_and_repeats_an_epoch_exactly():
    labels = [0] * 12 + [1] * 12
    sampler = ClassBalancedBatchSampler(labels, batch_size=8, seed=3)
    epochs = []
    for epoch in (0, 1, 0):
        sampler.start_epoch(epoch)
        epochs.append(list(sampler))
    assert epochs[0] != epochs[1]
    assert epochs[0] == epochs[2]
    again = ClassBalancedBatchSampler(labels, batch_size=8, seed=3)
    again.start_epoch(1)
    assert list(again) == epochs[1]
    other_seed = ClassBalancedBatchSampler(labels, batch_size=8, seed=4)
    other_seed.start_epoch(0)
    assert list(other_seed) != epochs[0]


@pytest.mark.parametrize("class_balanced", [True, False])
def test_training_sees_a_new_order_each_epoch_and_the_same_orders_with_the_same_seed(tmp_path, tiny_model_dir,
                                                                                    sentiment_task, class_balanced):
    runs = [recorded_run(tiny_args(tmp_path / name, tiny_model_dir, class_balanced=class_balanced), sentiment_task)
            for name in ("a", "b")]
    labels = [example.label for example in sentiment_task.splits["train"]]
    balanced = [sum(labels[i] for i in batch) * 2 == len(batch) for batch in runs[0].batches]
    assert all(balanced) if class_balanced else not all(balanced)
    per_epoch = len(runs[0].batches) // 2
    first, second = runs[0].batches[:per_epoch], runs[0].batches[per_epoch:]
    assert first != second
    assert sorted(map(sorted, first)) != sorted(map(sorted, second)), "epochs differ in their batches, not only order"
    assert runs[0].batches == runs[1].batches


def test_the_context_reports_the_optimiser_steps_taken(tmp_path, tiny_model_dir, sentiment_task):
    recording = recorded_run(tiny_args(tmp_path, tiny_model_dir, method="ascc", adversary="random"), sentiment_task)
    assert recording.steps == list(range(len(recording.batches)))
    accumulated = recorded_run(tiny_args(tmp_path / "accumulated", tiny_model_dir, gradient_accumulation_steps=2),
                               sentiment_task)
    assert accumulated.steps == [step // 2 for step in range(len(accumulated.batches))]


def test_random_adversary_draws_afresh_at_each_step_and_the_same_at_the_same_step(tmp_path, trained_tiny_dir,
                                                                                   sentiment_task):
    args = tiny_args(tmp_path, trained_tiny_dir, method="ascc", adversary="random")
    step = {"now": 0}
    objective, model, batch = set_up_objective(args, sentiment_task, current_step=lambda: step["now"])
    adversary = objective.adversary

    def texts_at(now: int) -> list[str]:
        step["now"] = now
        return [example.text for example in adversary.adversarial_examples(model, batch)[0]]

    at_zero, at_zero_again, at_one = texts_at(0), texts_at(0), texts_at(1)
    assert at_zero == at_zero_again
    assert at_zero != at_one
    originals = [sentiment_task.splits["train"][i].text for i in batch["index"].tolist()]
    assert at_zero != originals and at_one != originals


def student_features_read_by_the_heads(tmp_path, model_dir, task, method: str):
    """The student features that RIFT's MI term received on one batch, and the model's clean and adversarial
    features on that batch (fixed adversarial weights, eval mode)."""
    args = tiny_args(tmp_path, model_dir, method=method, feature="mean")
    objective, model, batch = set_up_objective(args, task)
    received = {}
    original = objective.mutual_information_loss

    def recording(student, teacher, labels):
        received["student"] = student.detach()
        return original(student, teacher, labels)

    objective.mutual_information_loss = recording
    adversarial_input = objective.adversary.perturb(model, batch)
    objective.adversary.perturb = lambda *a, **k: adversarial_input  # the same x' in the loss as below
    objective.loss(model, batch)
    with torch.no_grad():
        clean = classify(model, return_pooled=True, feature="mean", **model_inputs(batch)).pooled
        adversarial = classify(model, return_pooled=True, feature="mean", **adversarial_input.inputs).pooled
    return received["student"], clean, adversarial


@pytest.mark.parametrize("method", ["rift", "rift-clean"])
def test_rift_heads_read_the_adversarial_features_and_rift_clean_the_clean_ones(tmp_path, trained_tiny_dir,
                                                                               sentiment_task, method):
    student, clean, adversarial = student_features_read_by_the_heads(tmp_path, trained_tiny_dir, sentiment_task,
                                                                     method)
    assert not torch.allclose(clean, adversarial, atol=1e-4), "x' must differ from x for the test to tell"
    expected = adversarial if method == "rift" else clean
    torch.testing.assert_close(student, expected, rtol=1e-5, atol=1e-5)


def test_retention_compares_the_fine_tuned_model_with_the_pretrained_one(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, retention_examples=32, epochs=1)
    metrics = run_training(args, sentiment_task)
    tokenizer = load_tokenizer(args.output_dir)
    dev = encode_examples(tokenizer, sentiment_task.splits["dev"], 32)
    items = [dev[i] for i in sample_indices(len(dev), 32, 0)]
    fine_tuned = pooled_features(load_classifier(args.output_dir), items, 0, 64)
    pretrained = pooled_features(load_classifier(tiny_model_dir, sentiment_task.label_names), items, 0, 64)
    expected = linear_cka(fine_tuned, pretrained)
    assert expected < 0.999
    assert metrics["retention"]["cka"] == pytest.approx(expected, rel=1e-6)


def test_each_logged_gradient_norm_is_that_of_its_term_alone(tmp_path, trained_tiny_dir, sentiment_task):
    """term_gradient_norms on one batch equals, term by term, the encoder gradient's norm of that weighted term
    computed by its own forward and backward pass (eval mode and a fixed x', so both passes compute the same)."""
    args = tiny_args(tmp_path, trained_tiny_dir, method="rift", beta=2.0, alpha=0.7, adversarial_weight=0.5)
    objective, model, batch = set_up_objective(args, sentiment_task)
    weights = masked_softmax(torch.randn(batch["substitute_ids"].shape, generator=torch.Generator().manual_seed(5)),
                             batch["substitute_mask"])
    objective.adversary.search.find_weights = lambda *a, **k: weights  # the same x' in every pass
    terms = objective.loss(model, batch)
    parts = objective.loss_parts(terms)
    assert set(parts) == {"ce", "kl", "adv_ce", "mi"}
    assert sum(parts.values()).item() == pytest.approx(terms["loss"].item(), rel=1e-6)
    norms = term_gradient_norms(model, parts)
    encoder = [p for p in model.bert.parameters()]
    for name in parts:
        model.zero_grad()
        objective.loss_parts(objective.loss(model, batch))[name].backward()
        expected = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in encoder if p.grad is not None)).item()
        assert norms[name] == pytest.approx(expected, rel=1e-4), name
        assert expected > 0, name
    assert len(set(round(n, 6) for n in norms.values())) == 4  # four different terms, four different norms
    # the logged InfoNCE bound lies below its ceiling, log of the class's examples in the batch (8 of each)
    assert terms["mi_ceiling"].item() == pytest.approx(math.log(8))
    assert terms["mi_bound"].item() < terms["mi_ceiling"].item()


def test_a_run_logs_the_diagnostics_every_n_steps(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, method="rift", epochs=1, diagnostics_steps=2, logging_steps=1,
                     max_grad_norm=0.05)
    run_training(args, sentiment_task)
    logged = [json.loads(line) for line in (Path(args.output_dir) / "train_log.jsonl").read_text().splitlines()]
    training = [row for row in logged if "train/loss" in row]
    diagnosed = [row["step"] for row in training if "train/grad_norm/mi" in row]
    assert diagnosed == [2, 4, 6]  # the 2nd, 4th and 6th of 6 steps
    assert all({"train/grad_norm/ce", "train/grad_norm/kl"} <= row.keys() for row in training if row["step"] in diagnosed)
    assert all(row["train/clipped"] == 1.0 for row in training)  # clipping at 0.05 fires at every step
    assert all(row["train/mi_bound"] <= row["train/mi_ceiling"] for row in training)
