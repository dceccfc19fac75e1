"""The field's defences beside RIFT: each trains through the same run as every method; here, what each one's
perturbation must satisfy, against answers computed by hand."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import prepared
from test_distributed import data_options

from rift.arguments import TrainingArguments
from rift.cli import main
from rift.data.batching import model_inputs
from rift.models import classify, input_embeddings


def pgd_parts(tmp_path, model_dir, task, **options):
    args = TrainingArguments.build(output_dir=str(tmp_path / "run"), model=model_dir, method="pgd", max_length=32,
                                   **options)
    trainer = prepared(args, task)
    batch = trainer.objective.collate(trainer.encoded["train"][:8], trainer.pad_token_id)
    return trainer.model.eval(), trainer.objective, batch  # eval: no dropout, so the ascent is reproducible


def clean_loss(model, batch, delta=None) -> torch.Tensor:
    inputs = model_inputs(batch)
    embedded = input_embeddings(model)(inputs.pop("input_ids"))
    logits = classify(model, inputs_embeds=embedded + (0 if delta is None else delta), **inputs).logits
    return F.cross_entropy(logits, batch["labels"])


def test_one_pgd_step_from_zero_is_the_normalised_gradient_of_the_real_tokens(tmp_path, trained_tiny_dir,
                                                                              sentiment_task):
    model, objective, batch = pgd_parts(tmp_path, trained_tiny_dir, sentiment_task, adv_steps=1,
                                        adv_init_magnitude=0.0, adv_step_size=0.5)
    delta = objective.perturbation(model, batch)
    # by hand: the gradient of the clean loss on the word embeddings, zero at padding, scaled to norm 0.5 per example
    inputs = model_inputs(batch)
    embedded = input_embeddings(model)(inputs.pop("input_ids")).detach().requires_grad_(True)
    loss = F.cross_entropy(classify(model, inputs_embeds=embedded, **inputs).logits, batch["labels"])
    (gradient,) = torch.autograd.grad(loss, embedded)
    gradient = gradient * inputs["attention_mask"].unsqueeze(-1)
    expected = 0.5 * gradient / gradient.flatten(1).norm(dim=1).view(-1, 1, 1)
    assert torch.allclose(delta, expected, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # the ascent leaves the parameters' gradients alone


def test_pgd_perturbs_real_tokens_only_within_its_ball_and_raises_the_loss(tmp_path, trained_tiny_dir,
                                                                          sentiment_task):
    model, objective, batch = pgd_parts(tmp_path, trained_tiny_dir, sentiment_task, adv_steps=5,
                                        adv_step_size=0.3, adv_init_magnitude=0.05, adv_max_norm=0.5)
    torch.manual_seed(0)
    delta = objective.perturbation(model, batch)
    padding = batch["attention_mask"] == 0
    assert padding.any() and delta[padding].abs().max() == 0
    assert (delta.flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    assert (delta.flatten(1).norm(dim=1) > 0.45).all()  # five steps of 0.3 reach the ball's edge
    assert clean_loss(model, batch, delta) > clean_loss(model, batch) + 1e-3
    # the training loss is the adversarial cross-entropy alone, and its gradient reaches the embedding matrix
    torch.manual_seed(0)
    terms = objective(model, batch)
    assert torch.allclose(terms["loss"], clean_loss(model, batch, delta), atol=1e-6)
    terms["loss"].backward()
    assert input_embeddings(model).weight.grad.abs().sum() > 0


def test_pgd_trains_from_the_command_line_with_its_options(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    assert main(["train", "--method", "pgd", "--adv-steps", "2", "--adv-max-norm", "1.0", "--model", tiny_model_dir,
                 *data_options(tmp_path), "--epochs", "1", "--logging-steps", "1", "--retention-examples", "0",
                 "--output-dir", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["method"] == "pgd"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("train/adversarial_ce" in row for row in log)
    card = (run / "README.md").read_text()
    assert "PGD-K adversarial training on the word embeddings" in card and "| `adv_steps` | 2 |" in card


def test_freelb_trains_on_the_mean_loss_of_pgds_iterates(tmp_path, trained_tiny_dir, sentiment_task):
    # FreeLB's k-th iterate is PGD's perturbation after k steps (the same start): its loss is the mean of their CE
    options = dict(adv_step_size=0.2, adv_init_magnitude=0.5, adv_max_norm=0.4)
    model, pgd, batch = pgd_parts(tmp_path, trained_tiny_dir, sentiment_task, **options)
    iterates = []
    for steps in range(3):
        pgd.args.adv_steps = steps
        torch.manual_seed(0)
        iterates.append(pgd.perturbation(model, batch))
    args = TrainingArguments.build(output_dir=str(tmp_path / "freelb"), model=trained_tiny_dir, method="freelb",
                                   max_length=32, adv_steps=3, **options)
    freelb = prepared(args, sentiment_task).objective
    torch.manual_seed(0)
    terms = freelb(model, batch)
    expected = torch.stack([clean_loss(model, batch, delta) for delta in iterates]).mean()
    assert torch.allclose(terms["loss"], expected, atol=1e-6)
    assert all((delta.flatten(1).norm(dim=1) <= 0.4 + 1e-5).all() for delta in iterates[1:])
    # one backward accumulates the mean of the K steps' gradients, as the reference's K backward passes of loss / K
    parameters = [p for p in model.parameters() if p.requires_grad]
    separate = [torch.autograd.grad(clean_loss(model, batch, delta), parameters, allow_unused=True)
                for delta in iterates]
    terms["loss"].backward()
    for index, parameter in enumerate(parameters):
        found = [g[index] for g in separate if g[index] is not None]
        if found:
            assert torch.allclose(parameter.grad, torch.stack(found).mean(0), atol=1e-6)
    assert input_embeddings(model).weight.grad.abs().sum() > 0


def test_freelb_plus_plus_is_freelb_unbounded_with_ten_steps(capsys):
    from rift.objectives.freelb import FreeLBObjective, FreeLBPlusPlusObjective

    plain = TrainingArguments.build(output_dir="unused", method="freelb")
    longer = TrainingArguments.build(output_dir="unused", method="freelb++")
    assert issubclass(FreeLBPlusPlusObjective, FreeLBObjective)
    assert (plain.adv_steps, plain.adv_step_size, plain.adv_init_magnitude, plain.adv_max_norm) == (3, 0.1, 1.0, 0.6)
    assert (longer.adv_steps, longer.adv_step_size, longer.adv_init_magnitude, longer.adv_max_norm) == (
        10, 0.1, 1.0, 0.0)
    with pytest.raises(SystemExit):  # one flag, each method's own default
        main(["train", "--help"])
    assert "(default: 5 for --method pgd; 3 for --method freelb; 10 for --method freelb++)" in " ".join(
        capsys.readouterr().out.split())


def test_the_defences_run_in_a_bench_grid_by_name(tmp_path, tiny_model_dir):
    from rift.arguments import method_entry

    assert method_entry("freelb++") == ("freelb++", None) and method_entry("rift+discrete") == ("rift", "discrete")
    assert method_entry("freelb+++discrete") == ("freelb++", "discrete")
    config = tmp_path / "train.yaml"  # rift bench takes every cell's data options from a file
    data = data_options(tmp_path)
    config.write_text("".join(f"{flag[2:].replace('-', '_')}: {value}\n" for flag, value in zip(data[2::2], data[3::2])
                              if flag != "--max-length"))
    out = tmp_path / "bench"
    assert main(["bench", "--task", "file", "--train-config", str(config), "--model", tiny_model_dir,
                 "--methods", "pgd,freelb++", "--attacks", "pwws", "--num-examples", "4", "--epochs", "1",
                 "--max-length", "32", "--num-threads", "1", "--output-dir", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert [row["method"] for row in summary] == ["pgd", "freelb++"]
    saved = [json.loads((out / "cells" / f"file-{name}-s0" / "metrics.json").read_text())["method"]
             for name in ("pgd", "freelb++")]
    assert saved == ["pgd", "freelb++"]
