"""The field's defences beside RIFT: each trains through the same run as every method; here, what each one's
perturbation must satisfy, against answers computed by hand."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import prepared
from test_distributed import data_options

from rift.arguments import TrainingArguments
from rift.cli import main
from rift.errors import RiftError
from rift.data.batching import model_inputs
from rift.models import classify, input_embeddings
from rift.objectives import OBJECTIVES


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
    assert "(default: 5 for --method pgd; 3 for --method freelb, infobert; 10 for --method freelb++)" in " ".join(
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


def infobert_parts(tmp_path, model_dir, task, **options):
    args = TrainingArguments.build(output_dir=str(tmp_path / "infobert"), model=model_dir, method="infobert",
                                   max_length=32, **options)
    trainer = prepared(args, task)
    trainer.objective.setup(trainer.context())  # the critic
    batch = trainer.objective.collate(trainer.encoded["train"][:8], trainer.pad_token_id)
    return trainer.model.eval(), trainer.objective, batch


def test_infobert_local_robust_tokens_are_the_middle_band_of_gradient_ranks():
    from rift.objectives.infobert import local_robust_positions

    norms = torch.tensor([[5.0, 1.0, 3.0, 2.0, 4.0, 9.0], [1.0, 2.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]])
    # example 0: 5 real tokens ranked 1, 3, 2, 4, 0; ranks [ceil(2.5), ceil(4.5)) = 3, 4: tokens 4 and 0; the
    # padding (norm 9) is never ranked. Example 1: ranks [1, 2): token 1
    assert local_robust_positions(norms, mask, 0.5, 0.9) == [(0, 4), (0, 0), (1, 1)]
    assert local_robust_positions(norms, mask, 0.0, 1.0) == [(0, 1), (0, 3), (0, 2), (0, 4), (0, 0), (1, 0), (1, 1)]


def test_infobert_loss_terms_equal_a_hand_computation(tmp_path, trained_tiny_dir, sentiment_task):
    import math

    model, objective, batch = infobert_parts(tmp_path, trained_tiny_dir, sentiment_task, adv_steps=1,
                                             adv_init_magnitude=0.0, bottleneck_weight=0.1, anchored_weight=0.2)
    torch.manual_seed(0)
    terms = objective(model, batch)

    # by hand, drawing the same random numbers in the same order (the partners, then the pairs' shuffle)
    torch.manual_seed(0)
    inputs = model_inputs(batch)
    embedded = input_embeddings(model)(inputs.pop("input_ids")).detach().requires_grad_(True)
    output = model(inputs_embeds=embedded, output_hidden_states=True, **inputs)
    ce = F.cross_entropy(output.logits, batch["labels"])
    real = inputs["attention_mask"].bool()
    tokens = output.hidden_states[0][real]
    partners = torch.randint(len(tokens), (len(tokens),))
    bottleneck = sum(0.5 * (tokens[i] - tokens[partners[i]]).pow(2).sum() for i in range(len(tokens))) / len(tokens)
    (gradient,) = torch.autograd.grad(ce + 0.1 * bottleneck, embedded, retain_graph=True)
    pairs = []
    for example in range(len(real)):
        positions = real[example].nonzero().flatten().tolist()
        ranked = sorted(positions, key=lambda t: gradient[example, t].norm().item())
        n = len(positions)
        pairs += [(example, t) for t in ranked[math.ceil(0.5 * n):math.ceil(0.9 * n)]]
    order = torch.randperm(len(pairs))
    pairs = [pairs[i] for i in order]
    critic = objective.critic

    def score(x, z):  # the critic on the concatenation, as the reference computes it
        return F.softplus(critic.last(F.relu(critic.first(torch.cat([x, z])))))[0]

    bounds = []
    for start in range(0, len(pairs), len(real)):
        chunk = pairs[start:start + len(real)]
        if len(chunk) < 2:  # a bound over one pair is 0 whatever the critic: left out
            continue
        x = [output.hidden_states[0][e, t] for e, t in chunk]
        z = [output.hidden_states[-1][e, 0] for e, t in chunk]
        scores = torch.stack([torch.stack([score(x[j], z[i]) for j in range(len(chunk))]) for i in range(len(chunk))])
        bounds.append(scores.diagonal().mean() - scores.logsumexp(1).mean() + math.log(len(chunk)))
    nce = torch.stack(bounds).mean()
    assert len(pairs) > len(real)  # more than one chunk
    assert torch.allclose(terms["adversarial_ce"], ce, atol=1e-6)
    assert torch.allclose(terms["bottleneck"], bottleneck, atol=1e-5)
    assert torch.allclose(terms["anchored_nce"], nce, atol=1e-5)
    assert torch.allclose(terms["loss"], ce + 0.1 * bottleneck - 0.2 * nce, atol=1e-5)
    assert torch.allclose(sum(objective.loss_parts(terms).values()), terms["loss"], atol=1e-6)
    terms["loss"].backward()  # the critic learns from the same loss, towards a tighter bound
    assert objective.critic.first.weight.grad.abs().sum() > 0 and objective.critic.last.weight.grad.abs().sum() > 0


def test_infobert_without_its_regularisers_is_freelb(tmp_path, trained_tiny_dir, sentiment_task):
    options = dict(adv_steps=3, adv_step_size=0.2, adv_init_magnitude=0.5)
    model, infobert, batch = infobert_parts(tmp_path, trained_tiny_dir, sentiment_task, bottleneck_weight=0.0,
                                            anchored_weight=0.0, **options)
    args = TrainingArguments.build(output_dir=str(tmp_path / "freelb"), model=trained_tiny_dir, method="freelb",
                                   max_length=32, adv_max_norm=0.0, **options)
    freelb = prepared(args, sentiment_task).objective
    torch.manual_seed(0)
    expected = freelb(model, batch)["loss"]
    torch.manual_seed(0)
    assert torch.allclose(infobert(model, batch)["loss"], expected, atol=1e-6)


def test_infobert_trains_from_the_command_line_with_its_options(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "infobert", "--model", tiny_model_dir, *data_options(tmp_path), "--epochs", "1",
                 "--logging-steps", "1", "--retention-examples", "0", "--output-dir", str(run)]) == 0
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    logged = [row for row in log if "train/anchored_nce" in row]
    assert logged and all("train/bottleneck" in row and "train/adversarial_ce" in row for row in logged)
    card = (run / "README.md").read_text()
    assert "InfoBERT" in card and "| `bottleneck_weight` | 0.005 |" in card and "| `robust_rank_high` | 0.9 |" in card
    assert main(["train", "--method", "infobert", "--robust-rank-low", "0.9", "--robust-rank-high", "0.5",
                 "--model", tiny_model_dir, *data_options(tmp_path), "--output-dir", str(tmp_path / "bad")]) == 2
    assert "--robust-rank-low (0.9) must be below --robust-rank-high (0.5)" in capsys.readouterr().err


def test_a2t_changes_the_words_in_the_order_of_their_gradient_and_at_most_its_share(tokenizer):
    from test_attacks import SYNONYMS, TWO_CHANGES, WEIGHTS, BagOfWords, DictSource

    from rift.adversaries.a2t import GradientGreedySearch, word_importance
    from rift.attacks.wrapper import ModelWrapper
    from rift.text.words import align

    model = BagOfWords(tokenizer, WEIGHTS)
    search = GradientGreedySearch(ModelWrapper(model, tokenizer, batch_size=8, max_length=32), DictSource(SYNONYMS),
                                  max_changed_share=0.01, min_changes=1, query_budget=100)
    # A2T's bound: max(ceil(share x words), min changes), never more than the words
    assert [search._max_changes(n) for n in (5, 150)] == [1, 2]
    search.min_changes = 4
    assert [search._max_changes(n) for n in (3, 10)] == [3, 4]
    search.min_changes, changed = 1, []
    for importance in ({1: 1.0, 3: 5.0}, {1: 5.0, 3: 1.0}):  # "a good and great movie .": one change allowed
        search.importance = {id(TWO_CHANGES): importance}
        [result] = search.attack([TWO_CHANGES])
        changed.append([(c.position, c.new) for c in result.changes])
    assert changed == [[(3, "fine")], [(1, "fine")]]  # the most important word, its most damaging substitute
    # the importance of a word: the L1 norm of the mean of its pieces' gradients
    alignment = align(tokenizer, TWO_CHANGES.text, max_length=32)
    gradient = torch.zeros(len(alignment.input_ids), 3)
    [good] = alignment.word_tokens[0][1:2]
    gradient[good] = torch.tensor([1.0, -2.0, 0.5])
    assert word_importance(alignment, gradient)[1] == pytest.approx(3.5)


def test_a2t_adds_the_first_successful_attacks_of_a_seeded_order_as_a2t_weights_them(tmp_path, trained_tiny_dir,
                                                                                     sentiment_task):
    from rift.adversaries.base import encode_texts

    args = TrainingArguments.build(output_dir=str(tmp_path / "run"), model=trained_tiny_dir, method="a2t",
                                   max_length=32, a2t_adversarial_share=0.25, adversarial_weight=0.5)
    trainer = prepared(args, sentiment_task)
    objective = trainer.objective
    context = trainer.context()
    objective.setup(context)
    objective.current_epoch = lambda: 1.0  # past the clean first epoch
    batch = objective.collate(trainer.encoded["train"][:16], trainer.pad_token_id)
    model = trainer.model.eval()  # no dropout: the loss is reproducible by hand
    terms = objective(model, batch)

    order = list(range(16))
    random.Random(f"a2t {args.seed} {batch['index'].tolist()}").shuffle(order)
    rows, examples = objective.adversary.successful_examples(model, batch, 4, order)
    assert 0 < len(rows) <= 4 and sorted(rows, key=order.index) == rows  # the first successes of the order
    inputs = encode_texts(objective.adversary.tokenizer, examples, 32, batch["input_ids"].device)
    with torch.no_grad():
        adversarial = classify(model, **inputs).logits
        clean = classify(model, **model_inputs(batch)).logits
    assert (adversarial.argmax(-1) != batch["labels"][rows]).all()  # each one changed the prediction
    if len(rows) == 4:  # the search stopped there: later rows of the order were not attacked
        assert all(order.index(r) < 16 for r in rows)
    ce = F.cross_entropy(clean, batch["labels"], reduction="sum")
    adv_ce = F.cross_entropy(adversarial, batch["labels"][rows], reduction="sum")
    total = 16 + len(rows)  # A2T's mean over the clean examples and the added ones, these weighted alpha
    assert torch.allclose(terms["loss"], (ce + 0.5 * adv_ce) / total, atol=1e-5)
    assert torch.allclose(terms["ce"] + terms["adv_ce"], terms["loss"], atol=1e-6)
    assert terms["adversarial_share"].item() == len(rows) / 16


def test_a2t_trains_its_first_epoch_clean_then_on_its_adversarys_texts(tmp_path, tiny_model_dir, trained_tiny_dir,
                                                                       capsys):
    run = tmp_path / "run"  # from the trained tiny model, whose predictions its attacks change
    assert main(["train", "--method", "a2t", "--model", trained_tiny_dir, *data_options(tmp_path), "--epochs", "2",
                 "--batch-size", "16", "--logging-steps", "1", "--retention-examples", "0", "--output-dir",
                 str(run)]) == 0
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    steps = [row for row in log if "train/adv_ce" in row]  # one row per step, two epochs of as many steps
    assert len(steps) % 2 == 0 and len(steps) >= 4
    first, second = steps[:len(steps) // 2], steps[len(steps) // 2:]
    assert all(r["train/adv_ce"] == 0 and r["train/adversarial_share"] == 0 for r in first)
    assert any(r["train/adv_ce"] > 0 for r in second)
    assert all(0 <= r["train/adversarial_share"] <= 0.2 + 1 / 16 for r in second)  # ceil(0.2 x 16) of 16 at most
    card = (run / "README.md").read_text()
    assert "A2T" in card and "| `clean_epochs` | 1 |" in card and "| `a2t_max_changed_share` | 0.1 |" in card
    assert "| `a2t_adversarial_share` | 0.2 |" in card
    # its attacks are compared with its own adversary's surface, as every adversarial method's are
    assert main(["attack", "--model", str(run), *data_options(tmp_path), "--num-examples", "8", "--output-dir",
                 str(tmp_path / "attacked")]) == 0
    results = json.loads((tmp_path / "attacked" / "results.json").read_text())
    assert results["training_adversary"] == "a2t"
    changes = [change for line in (tmp_path / "attacked" / "examples_pwws.jsonl").read_text().splitlines()
               for change in json.loads(line)["changes"]]
    assert changes and all(change["in_training_surface"] is not None for change in changes)
    assert main(["train", "--method", "a2t", "--adversary", "discrete", "--model", tiny_model_dir,
                 *data_options(tmp_path), "--output-dir", str(tmp_path / "bad")]) == 2
    assert "--adversary is not read by --task file, --method a2t" in capsys.readouterr().err


def test_a_neighbourhood_is_the_substitutes_then_theirs_without_repeats():
    from test_attacks import DictSource

    from rift.substitutions.neighbourhood import NeighbourhoodSource

    table = {"good": ["nice", "fine"], "nice": ["pleasant", "good", "fine"], "fine": ["okay", "nice", "pleasant"]}
    words = ["a", "good", "film"]
    source = NeighbourhoodSource(DictSource(table), max_neighbours=10)
    assert source.substitutes(words, 1) == ["nice", "fine", "pleasant", "okay"]
    assert source.hops(words, 1) == [1, 1, 2, 2]
    assert NeighbourhoodSource(DictSource(table), max_neighbours=3).substitutes(words, 1) == ["nice", "fine", "pleasant"]
    assert source.substitutes(words, 0) == [] and source.hops(words, 2) == []


def dne_run(tmp_path, tiny_model_dir, *options) -> str:
    run = tmp_path / "dne"
    assert main(["train", "--method", "dne", "--model", tiny_model_dir, *data_options(tmp_path), "--epochs", "1",
                 "--logging-steps", "1", "--retention-examples", "0", "--dne-samples", "4", *options,
                 "--output-dir", str(run)]) == 0
    return str(run)


def test_dne_mixes_convex_weights_over_each_words_neighbourhood(tmp_path, tiny_model_dir, sentiment_task,
                                                               monkeypatch):
    from rift.objectives.dne import DNEObjective

    args = TrainingArguments.build(output_dir=str(tmp_path / "run"), model=tiny_model_dir, method="dne",
                                   max_length=32, dne_neighbours=6)
    trainer = prepared(args, sentiment_task)
    objective = trainer.objective
    objective.setup(trainer.context())
    items = trainer.encoded["train"][:8]
    batch = objective.collate(items, trainer.pad_token_id)
    # every row's candidates: the word, its substitutes (hop 1), then theirs (hop 2), each a word of any pieces
    for item, layout in ((item, objective.layouts[item.index]) for item in items):
        words = [w.text for w in item.alignment.segments[0]]
        for position, row in layout.word_rows.items():
            expected = objective.source.substitutes(words, position)
            assert len(layout.rows[row]) - 1 <= len(expected) <= 6
            assert layout.hops[row][0] == 0 and set(layout.hops[row][1:]) <= {1, 2}
    assert (batch["mix_hops"] == 2).any() and (batch["mix_valid"].sum(-1) > 0).any()
    seen = []
    original = DNEObjective.mixed_loss

    def recording(self, model, embedded, batch, weights):
        seen.append(weights.detach())
        return original(self, model, embedded, batch, weights)

    monkeypatch.setattr(DNEObjective, "mixed_loss", recording)
    model = trainer.model.eval()  # no dropout: the passes can be recomputed by hand
    torch.manual_seed(0)
    terms = objective(model, batch)
    assert len(seen) == 1 + 3  # the draw, then three ascent steps
    mask = batch["mix_row_mask"]
    for weights in seen:  # convex over each row's candidates, zero elsewhere: the mix stays in the hull
        assert (weights >= 0).all() and (weights[~mask] == 0).all()
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:2]), atol=1e-5)
    several = mask.sum(-1) > 1
    assert not torch.allclose(seen[0][several], seen[-1][several])  # the ascent moved the weights
    # by hand, the first step: the logits of the draw (up to a constant per word, which the softmax ignores) move by
    # 10 along the gradient of the draw's cross-entropy, normalised per word over its candidates
    logits = seen[0].log().requires_grad_(True)
    embedded = input_embeddings(model)(batch["mix_ids"])
    (gradient,) = torch.autograd.grad(original(objective, model, embedded, batch, logits.softmax(-1)), logits)
    gradient = torch.nan_to_num(gradient)  # zero at the -inf of absent candidates
    moved = (logits.detach() + 10 * gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)).softmax(-1)
    assert torch.allclose(moved, seen[1], atol=1e-5)
    assert torch.allclose(terms["loss"], terms["sampled_ce"] + terms["ascent_ce"])
    # the draw's concentration: alpha for the word and hop 1, alpha x decay for hop 2
    from rift.prediction import concentrations

    c = concentrations(batch["mix_hops"], mask, 1.0, 0.5)
    assert set(c[mask & (batch["mix_hops"] == 2)].tolist()) == {0.5} and set(c[mask & (batch["mix_hops"] < 2)].tolist()) == {1.0}


def test_a_dne_model_is_attacked_and_scored_through_its_averaged_prediction(tmp_path, tiny_model_dir, capsys):
    from rift.models import load_classifier, load_tokenizer
    from rift.prediction import AveragedPredictor, recorded_prediction
    from rift.substitutions import build_substitution_source
    from rift.attacks.wrapper import ModelWrapper
    from rift.data import resolve_data_dir

    model_dir = dne_run(tmp_path, tiny_model_dir)
    saved = json.loads((Path(model_dir) / "config.json").read_text())["rift_prediction"]
    assert saved["samples"] == 4 and saved["aggregation"] == "mean of L2-normalised logits"
    model, tokenizer = load_classifier(model_dir).eval(), load_tokenizer(model_dir)
    prediction = recorded_prediction(model)
    source = build_substitution_source(prediction.synonyms, resolve_data_dir(None), max_substitutes=prediction.max_substitutes)
    predictor = AveragedPredictor(model, tokenizer, prediction, source, 32)
    inputs = [("a good and fine film .", None), ("a dull , bad plot .", None), ("it is 42 .", None)]
    together = predictor.scores(inputs)
    alone = torch.cat([predictor.scores([one]) for one in inputs])
    assert torch.allclose(together, alone, atol=1e-5)  # an input's draws do not depend on its batch
    rows = torch.tensor([[1.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    first, again, other = predictor.draws([1, 2, 3], rows), predictor.draws([1, 2, 3], rows), predictor.draws([1, 2, 4], rows)
    assert torch.equal(first, again) and not torch.equal(first, other)  # seeded by the input itself
    assert first.shape == (4, 2, 4) and torch.allclose(first.sum(-1), torch.ones(4, 2)) and (first[:, 0, 3] == 0).all()
    assert (together.norm(dim=-1) <= 1 + 1e-6).all()  # a mean of unit vectors
    # the wrapper's probabilities are the softmax of the average, and each input costs its four passes
    wrapper = ModelWrapper(model, tokenizer, max_length=32, predictor=predictor)
    probabilities = wrapper.probabilities(wrapper.encode(inputs))
    assert torch.allclose(probabilities, together.softmax(-1), atol=1e-6) and wrapper.queries == 3 * 4
    # a text without neighbours (stop words and a number): every pass is the plain forward, whose logits the average normalises
    plain = F.normalize(model(**tokenizer(["it is 42 ."], return_tensors="pt")).logits, dim=-1)
    assert torch.allclose(together[2], plain[0], atol=1e-5)

    out = tmp_path / "attack"
    data = [o for o in data_options(tmp_path)]
    assert main(["attack", "--model", model_dir, *data, "--attack", "pwws", "--num-examples", "6",
                 "--output-dir", str(out)]) == 0
    records = [json.loads(line) for line in (out / "examples_pwws.jsonl").read_text().splitlines()]
    assert all(r["queries"] % 4 == 0 and r["queries"] >= 4 for r in records)
    results = json.loads((out / "results.json").read_text())
    assert results["prediction"]["samples"] == 4
    first = records[0]
    text = first["text"]
    assert first["clean_probabilities"] == pytest.approx(predictor.scores([(text, None)]).softmax(-1)[0].tolist(), abs=1e-5)
    assert main(["attack", "--model", model_dir, *data, "--attack", "ascc", "--num-examples", "2",
                 "--output-dir", str(tmp_path / "ascc")]) == 2
    assert "predicts by averaging 4 passes" in capsys.readouterr().err
    assert main(["eval", "--model", model_dir, *data, "--output", str(tmp_path / "eval.json")]) == 0
    from rift.evaluation.accuracy import averaged_accuracy
    from conftest import sentiment_examples

    expected = averaged_accuracy(predictor, sentiment_examples(40, 2), 16)
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == pytest.approx(expected)
    metrics = json.loads((Path(model_dir) / "metrics.json").read_text())  # training scored it as it predicts
    assert metrics["test_accuracy"] == pytest.approx(expected) and "test_accuracy_single_pass" in metrics
    # a model fine-tuned further from it predicts as its own method does: in one pass
    further = tmp_path / "further"
    assert main(["train", "--method", "standard", "--model", model_dir, *data, "--epochs", "1",
                 "--retention-examples", "0", "--output-dir", str(further)]) == 0
    assert "rift_prediction" not in json.loads((further / "config.json").read_text())
    # a prediction this version cannot read is one line
    model.config.rift_prediction = {"samples": 4, "votes": "majority"}
    with pytest.raises(RiftError, match="records a prediction .* that this version of rift cannot read"):
        recorded_prediction(model)


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_an_objective_owns_no_parameter_of_the_model(tmp_path, tiny_model_dir, sentiment_task, method):
    # an objective's parameters are trained as its own heads: one of the model's there would be optimised twice
    args = TrainingArguments.build(output_dir=str(tmp_path / "run"), model=tiny_model_dir, method=method, max_length=32)
    trainer = prepared(args, sentiment_task)
    trainer.objective.setup(trainer.context())
    model = {id(p) for p in trainer.model.parameters()}
    assert not [name for name, p in trainer.objective.named_parameters() if id(p) in model]
