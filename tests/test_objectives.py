"""The ASCC adversary and the robust training objectives (standard, ascc, rift and its ablations, l2sp, mixout)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import NEGATIVE, POSITIVE, prepared
from safetensors import safe_open

from rift.arguments import TrainingArguments
from rift.attacks.ascc import ASCCSearch, ASCCAttack, masked_softmax
from rift.data import Example
from rift.evaluation.robustness import run_attack
from rift.models import classify, load_classifier
from rift.adversaries import ADVERSARIES
from rift.objectives import OBJECTIVES, build_objective
from rift.objectives.rift import RIFTOptions, info_nce
from rift.substitutions import SubstitutionSource
from rift.substitutions.tokens import collate_substitutions, token_substitutions
from rift.data.batching import collate, encode_examples, model_inputs
from rift.training.run import train_run


class OppositeSentiment(SubstitutionSource):
    """Every sentiment word may become any word of the other polarity: a search space where a perfect adversary
    flips every prediction of a model that reads sentiment words."""

    name = "opposite"

    def substitutes(self, words, position):
        word = words[position].lower()
        if word in POSITIVE:
            return list(NEGATIVE)
        if word in NEGATIVE:
            return list(POSITIVE)
        return []


def tiny_args(tmp_path: Path, model: str, **overrides) -> TrainingArguments:
    values = dict(output_dir=str(tmp_path / "run"), model=model, epochs=1, batch_size=16, learning_rate=3e-3,
                  max_length=32, seed=0, ascc_steps=3, logging_steps=1)
    values.update(overrides)
    return TrainingArguments.build(unread="drop", **values)


@pytest.fixture(scope="module")
def standard_tiny_model(trained_tiny_dir):
    return load_classifier(trained_tiny_dir).eval()


def adversary_inputs(model, tokenizer, examples, source, max_substitutes=8):
    items = encode_examples(tokenizer, examples, 32)
    batch = collate(items, tokenizer.pad_token_id)
    subs = [token_substitutions(item.alignment, tokenizer, source, max_substitutes) for item in items]
    ids, mask = collate_substitutions(subs, batch["input_ids"].shape[1], max_substitutes)
    return batch, ids, mask


def test_ascc_weights_are_convex_and_leave_the_model_untouched(standard_tiny_model, tokenizer, sentiment_task):
    model = standard_tiny_model
    model.train()  # the adversary must switch to eval mode itself and switch back
    batch, ids, mask = adversary_inputs(model, tokenizer, sentiment_task.splits["dev"][:16], OppositeSentiment())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clean = classify(model, **model_inputs(batch)).logits.detach()
    weights = ASCCSearch(steps=5).find_weights(model, ids, mask, batch["attention_mask"], batch.get("token_type_ids"),
                                                  clean_logits=clean, generator=torch.Generator().manual_seed(0))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    assert (weights[~mask] == 0).all()
    assert mask[..., 1:].any(), "the search space is not empty"
    model.eval()


@pytest.mark.parametrize("objective", ["kl", "ce"])
def test_ascc_search_raises_its_objective_over_its_steps(standard_tiny_model, tokenizer, sentiment_task, objective):
    model = standard_tiny_model
    batch, ids, mask = adversary_inputs(model, tokenizer, sentiment_task.splits["dev"][:16], OppositeSentiment())
    inputs = dict(attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    with torch.no_grad():
        clean = classify(model, **model_inputs(batch)).logits
    initial = torch.randn(ids.shape, generator=torch.Generator().manual_seed(0))
    embeddings = model.get_input_embeddings()(ids).detach()

    def achieved(weights: torch.Tensor) -> float:
        """The attack's objective at ``weights``, summed over the batch, computed here from its definition."""
        with torch.no_grad():
            logits = classify(model, inputs_embeds=(embeddings * weights[..., None]).sum(2), **inputs).logits
        if objective == "ce":
            return -logits.log_softmax(-1)[torch.arange(len(logits)), batch["labels"]].sum().item()
        p_clean = clean.softmax(-1)
        return (p_clean * (p_clean.log() - logits.log_softmax(-1))).sum().item()

    for sparsity_weight in (0.0, 15.0):
        values = []
        for steps in range(6):
            adversary = ASCCSearch(steps=steps, learning_rate=0.5, sparsity_weight=sparsity_weight, objective=objective)
            weights = adversary.find_weights(model, ids, mask, **inputs, clean_logits=clean, labels=batch["labels"],
                                             initial=initial)
            values.append(achieved(weights))
        # the search starts where the initial weights are and climbs from there; without the sparsity term every
        # step climbs (measured: kl 7.47 -> 8.10 and ce 20.5 -> 21.7 over 5 steps, summed over the 16 examples)
        assert values[-1] > values[0] + (0.3 if sparsity_weight == 0 else 0.02), (sparsity_weight, values)
        if sparsity_weight == 0:
            assert all(later >= earlier - 1e-4 for earlier, later in zip(values, values[1:])), values


def test_ascc_lowers_the_accuracy_of_a_standard_model(standard_tiny_model, tokenizer, sentiment_task, tmp_path):
    attack = ASCCAttack(standard_tiny_model, tokenizer, OppositeSentiment(), steps=10, max_substitutes=6, seed=0)
    examples = sentiment_task.splits["test"]
    summary = run_attack(attack, examples, list(range(len(examples))), tmp_path, show_progress=False)
    assert summary["clean_accuracy"] >= 0.9
    assert summary["robust_accuracy"] <= summary["clean_accuracy"] - 0.5
    records = [json.loads(line) for line in (tmp_path / "examples_ascc.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(len(examples)))
    for record in records:
        for change in record["changes"]:  # the shown discrete substitutes come from the allowed set
            assert change["new"] in OppositeSentiment().substitutes([change["old"]], 0)


def test_ascc_attack_is_independent_of_batch_composition(standard_tiny_model, tokenizer, sentiment_task):
    examples = sentiment_task.splits["test"][:12]
    attack = ASCCAttack(standard_tiny_model, tokenizer, OppositeSentiment(), steps=4, seed=3, batch_size=12)
    together = attack.attack(examples, list(range(12)))
    apart = attack.attack(examples[5:9], [5, 6, 7, 8])
    for a, b in zip(together[5:9], apart):
        assert a.status == b.status
        assert a.adversarial_probabilities == pytest.approx(b.adversarial_probabilities, abs=1e-5)


def test_ascc_attacks_only_the_hypothesis_of_a_pair(standard_tiny_model, tokenizer):
    examples = [Example("the movie was good .", 1, "a good film ."), Example("bad plot .", 0, "the acting was awful .")]
    results = ASCCAttack(standard_tiny_model, tokenizer, OppositeSentiment(), steps=3).attack(examples)
    for example, result in zip(examples, results):
        assert result.adversarial_text == example.text
        assert result.adversarial_text_pair is not None


def test_info_nce_matches_a_hand_computed_value():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    tau = 0.5
    # normalised rows: s = (1,0), (0,1), (.6,.8); t = (1,0), (1/sqrt2, 1/sqrt2), (0,-1)
    r = 2 ** -0.5
    similarity = torch.tensor([[1.0, r, 0.0], [0.0, r, -1.0], [0.6, 1.4 * r, -0.8]]) / tau  # rows: students
    # the authors' LogSoftmax(0): for each teacher column k, its student k against all students
    expected = -sum(similarity[k, k] - torch.logsumexp(similarity[:, k], 0) for k in range(3)) / 3
    assert info_nce(student, teacher, tau).item() == pytest.approx(expected.item(), rel=1e-6)
    # the other axis (over teachers, per student row) is another bound with another value on this matrix
    other = -sum(similarity[k, k] - torch.logsumexp(similarity[k], 0) for k in range(3)) / 3
    assert abs(expected.item() - other.item()) > 0.05
    # the positive pair is the same example: a perfectly aligned batch scores lower than a shuffled one
    assert info_nce(teacher, teacher, tau) < info_nce(teacher, teacher[[1, 2, 0]], tau)


@pytest.mark.parametrize("method", ["rift", "rift-uncond", "rift-clean"])
def test_rift_training_keeps_the_teacher_and_saves_a_plain_checkpoint(tmp_path, tiny_model_dir, sentiment_task, method):
    args = tiny_args(tmp_path, tiny_model_dir, method=method, alpha=0.5, beta=1.0)
    trainer = prepared(args, sentiment_task)
    teacher_state = None
    objective = trainer.objective
    original_setup = objective.setup

    def setup(t):
        nonlocal teacher_state
        original_setup(t)
        teacher_state = {k: v.clone() for k, v in objective.teacher.state_dict().items()}

    objective.setup = setup
    metrics = train_run(args, task=sentiment_task, model=trainer.model, tokenizer=trainer.tokenizer,
                        objective=objective, log=lambda *a: None)
    assert metrics["steps"] > 0
    heads = len(objective.student_heads)
    assert heads == (1 if method == "rift-uncond" else 2)
    for name, value in objective.teacher.state_dict().items():
        assert torch.equal(value, teacher_state[name]), name
    assert not objective.teacher.training
    # the student moved away from the teacher
    student = trainer.model.state_dict()
    assert any(not torch.equal(student[k].cpu(), teacher_state[k]) for k in teacher_state if k in student)

    # the teacher's features, computed before training, equal freshly computed ones
    items = trainer.encoded["train"][:8]
    batch = collate(items, trainer.pad_token_id)
    fresh = classify(objective.teacher, return_pooled=True, **model_inputs(batch)).pooled
    torch.testing.assert_close(objective._cache[batch["index"]], fresh, rtol=1e-5, atol=1e-5)

    # the checkpoint is a plain classifier: no projection heads, no teacher
    with safe_open(Path(args.output_dir) / "model.safetensors", "pt") as saved:
        keys = set(saved.keys())
    assert not any("head" in k or "teacher" in k for k in keys)
    plain = load_classifier(args.output_dir)
    assert keys == set(plain.state_dict().keys()) - {k for k in plain.state_dict() if "position_ids" in k}


def rift_step_parts(tmp_path, model_dir, sentiment_task, **options):
    """A rift trainer set up on a tiny model, a class-balanced batch of 8 and fixed adversarial weights, so that the
    loss of the model in eval mode (no dropout) can be recomputed by hand."""
    args = tiny_args(tmp_path, model_dir, method="rift", alpha=0.7, beta=2.0, tau=0.5, **options)
    trainer = prepared(args, sentiment_task)
    objective = trainer.objective
    objective.setup(trainer.context())
    items = trainer.encoded["train"][:8]
    assert sorted(item.label for item in items) == [0] * 4 + [1] * 4
    batch = objective.collate(items, trainer.pad_token_id)
    generator = torch.Generator().manual_seed(5)
    weights = masked_softmax(torch.randn(batch["substitute_ids"].shape, generator=generator), batch["substitute_mask"])
    objective.adversary.search.find_weights = lambda *a, **k: weights
    return trainer, objective, batch, weights


def test_rift_total_loss_equals_ce_plus_beta_kl_plus_alpha_mi_by_hand(tmp_path, trained_tiny_dir, sentiment_task):
    # the fine-tuned tiny model: its predictions are confident, so the adversarial weights move them
    trainer, objective, batch, weights = rift_step_parts(tmp_path, trained_tiny_dir, sentiment_task)
    model = trainer.model.eval()
    terms = objective(model, batch)

    with torch.no_grad():
        labels = batch["labels"]
        clean = model(**model_inputs(batch)).logits
        embeddings = model.get_input_embeddings()(batch["substitute_ids"])  # [B, L, S, H]
        mixed = (embeddings * weights[..., None]).sum(2)
        outputs = model.bert(inputs_embeds=mixed, attention_mask=batch["attention_mask"],
                             token_type_ids=batch["token_type_ids"])
        adversarial = model.classifier(outputs.pooler_output)
        student = outputs.pooler_output
        teacher = objective.teacher.bert(**model_inputs(batch)).pooler_output

        ce = -clean.log_softmax(-1)[torch.arange(8), labels].mean()
        p_clean, p_adversarial = clean.softmax(-1), adversarial.softmax(-1)
        kl = (p_clean * (p_clean.log() - p_adversarial.log())).sum(-1).mean()
        mi_terms = []
        for c in (0, 1):
            rows = labels == c
            s = F.normalize(objective.student_heads[c](student[rows]), dim=-1)
            t = F.normalize(objective.teacher_heads[c](teacher[rows]), dim=-1)
            similarity = s @ t.T / 0.5
            mi_terms.append(-(similarity.diagonal() - similarity.logsumexp(0)).mean())
        mi = sum(mi_terms) / 2

    assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl.item(), rel=1e-4, abs=1e-7)
    assert terms["mi"].item() == pytest.approx(0.7 * mi.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx((ce + 2.0 * kl + 0.7 * mi).item(), rel=1e-5)
    assert kl.item() > 1e-4 and mi.item() > 0.1  # every term is non-trivial here


def test_adversarial_weight_adds_the_cross_entropy_on_x_prime_by_hand(tmp_path, trained_tiny_dir, sentiment_task):
    trainer, objective, batch, weights = rift_step_parts(tmp_path, trained_tiny_dir, sentiment_task,
                                                         adversarial_weight=0.3)
    model = trainer.model.eval()
    terms = objective(model, batch)
    with torch.no_grad():
        embeddings = model.get_input_embeddings()(batch["substitute_ids"])
        mixed = (embeddings * weights[..., None]).sum(2)
        adversarial = model(inputs_embeds=mixed, attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"]).logits
        adversarial_ce = -adversarial.log_softmax(-1)[torch.arange(8), batch["labels"]].mean()
    assert terms["adv_ce"].item() == pytest.approx(0.3 * adversarial_ce.item(), rel=1e-5)
    assert adversarial_ce.item() > 0.01
    rest = terms["ce"] + 2.0 * terms["kl"] + terms["mi"]
    assert terms["loss"].item() == pytest.approx((rest + terms["adv_ce"]).item(), rel=1e-5)
    # by default (the authors' objective) the term is absent
    _, plain_objective, plain_batch, _ = rift_step_parts(tmp_path / "plain", trained_tiny_dir, sentiment_task)
    assert "adv_ce" not in plain_objective(model, plain_batch)


def test_rift_mi_term_trains_the_heads_and_the_encoder(tmp_path, trained_tiny_dir, sentiment_task):
    trainer, objective, batch, _ = rift_step_parts(tmp_path, trained_tiny_dir, sentiment_task)
    model = trainer.model.eval()
    objective(model, batch)["mi"].backward()  # the MI term alone
    for heads in (objective.student_heads, objective.teacher_heads):
        for head in heads:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    encoder = dict(model.bert.encoder.named_parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for name, p in encoder.items() if "weight" in name)
    # by default the term reads the classification head's own input (BERT: the pooler), so it reaches the pooler
    assert RIFTOptions.feature == "pooler"
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.bert.pooler.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.classifier.parameters())
    assert all(p.grad is None for p in objective.teacher.parameters())  # the teacher stays frozen


def test_each_class_heads_see_only_that_class(tmp_path, trained_tiny_dir, sentiment_task):
    trainer, objective, batch, _ = rift_step_parts(tmp_path, trained_tiny_dir, sentiment_task)
    seen: dict[tuple[str, int], torch.Tensor] = {}
    for kind, heads in (("student", objective.student_heads), ("teacher", objective.teacher_heads)):
        for c, head in enumerate(heads):
            head.register_forward_hook(lambda module, inputs, output, key=(kind, c): seen.__setitem__(key, inputs[0]))
    objective(trainer.model.eval(), batch)
    teacher = objective.teacher_features(batch)
    for c in (0, 1):
        rows = batch["labels"] == c
        assert len(seen["student", c]) == len(seen["teacher", c]) == int(rows.sum()) == 4
        torch.testing.assert_close(seen["teacher", c], teacher[rows])


def test_l2sp_is_zero_at_initialisation_and_grows_with_training(tmp_path, tiny_model_dir, sentiment_task):
    args = tiny_args(tmp_path, tiny_model_dir, method="l2sp", l2sp_weight=1.0)
    trainer = prepared(args, sentiment_task)
    trainer.objective.setup(trainer.context())
    assert trainer.objective.distance(trainer.model).item() == 0.0
    items = trainer.encoded["train"][:16]
    terms = trainer.objective(trainer.model, trainer.objective.collate(items, trainer.pad_token_id))
    assert terms["l2sp"].item() == 0.0
    with torch.no_grad():
        next(trainer.model.base_model.parameters()).add_(0.5)
    assert trainer.objective.distance(trainer.model).item() > 0.0


def mixout_and_ascc(tmp_path, model_dir, sentiment_task, probability):
    """Set-up mixout and ascc objectives on the same model, fine-tuned weights away from the pre-trained ones, no
    dropout (train mode then differs from eval mode only by the mixing), the same batch and adversarial weights."""
    objectives = {}
    for method in ("ascc", "mixout"):
        args = tiny_args(tmp_path / method, model_dir, method=method, mixout_probability=probability)
        trainer = prepared(args, sentiment_task)
        trainer.objective.setup(trainer.context())
        objectives[method] = trainer.objective
    model = trainer.model
    with torch.no_grad():  # as if fine-tuned: every weight away from its pre-trained value
        generator = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=generator))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = trainer.objective.collate(trainer.encoded["train"][:16], trainer.pad_token_id)
    weights = masked_softmax(torch.randn(batch["substitute_ids"].shape, generator=generator), batch["substitute_mask"])
    for objective in objectives.values():
        objective.adversary.search.find_weights = lambda *a, **k: weights
    return model.train(), objectives, batch


def test_mixout_without_swaps_equals_ascc(tmp_path, trained_tiny_dir, sentiment_task):
    """With probability 0 Mixout keeps every fine-tuned weight, so its loss is the ASCC loss exactly."""
    model, objectives, batch = mixout_and_ascc(tmp_path, trained_tiny_dir, sentiment_task, 0.0)
    losses = {method: objective.loss(model, batch)["loss"].item() for method, objective in objectives.items()}
    assert losses["mixout"] == pytest.approx(losses["ascc"], rel=1e-6)


def test_mixout_mixes_the_weights_by_its_formula_in_training_only(tmp_path, trained_tiny_dir, sentiment_task, monkeypatch):
    p = 0.3  # not the 0.5 of a hard-coded mixing
    # the fine-tuned tiny model: its confident predictions move when its weights are mixed
    model, objectives, batch = mixout_and_ascc(tmp_path, trained_tiny_dir, sentiment_task, p)
    mixout = objectives["mixout"]
    import rift.objectives.adversarial as adversarial

    used = []

    def recording_classify(model, parameters=None, **kwargs):
        used.append(parameters)
        return classify(model, parameters=parameters, **kwargs)

    monkeypatch.setattr(adversarial, "classify", recording_classify)
    mixed_loss = mixout.loss(model, batch)["loss"]
    ascc_loss = objectives["ascc"].loss(model, batch)["loss"]
    # the mixing changes the loss (by 6e-4 here: Mixout moves a weight in proportion to its distance from W0),
    # far beyond the float error of two computations of one loss (~1e-7)
    assert abs(mixed_loss.item() - ascc_loss.item()) > 1e-4

    # the clean and the adversarial pass of the step share one mixing; the ascc passes use the plain weights
    assert len(used) == 4 and used[0] is used[1] and used[2] is None and used[3] is None
    mixed = used[0]
    weights = dict(model.named_parameters())
    assert mixed.keys() == {name for name, w in weights.items() if id(w) in mixout.anchor}
    assert any("attention" in name for name in mixed) and not any("classifier" in name for name in mixed)
    swapped = total = 0
    for name, value in mixed.items():
        anchor, weight = mixout.anchor[id(weights[name])], weights[name].detach()
        # W' = (M * W0 + (1 - M) * W - p * W0) / (1 - p): W0 where swapped, (W - p * W0) / (1 - p) elsewhere
        is_anchor = torch.isclose(value, anchor, rtol=0, atol=1e-6)
        is_rescaled = torch.isclose(value, (weight - p * anchor) / (1 - p), rtol=0, atol=1e-6)
        assert (is_anchor | is_rescaled).all(), name
        swapped += int((is_anchor & ~is_rescaled).sum())
        total += value.numel()
    assert abs(swapped / total - p) < 0.02  # a Bernoulli(p) mask over every weight
    mixed_loss.backward()  # gradients reach the fine-tuned weights through the rescaled ones
    assert all(weights[name].grad is not None and weights[name].grad.abs().sum() > 0 for name in mixed)
    used.clear()
    mixout.loss(model.eval(), batch)  # outside training (the adversary's search, evaluation) nothing is mixed
    assert used == [None, None]


class ReadRecorder:
    """The arguments, recording which of them are read."""

    def __init__(self, args):
        self.args, self.read = args, set()

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self.args, name)


def test_every_method_trains_one_step_reading_every_option_it_declares(tmp_path, tiny_model_dir, sentiment_task):
    # the options object holds only the chosen components' options, so reading another fails; and a run is
    # retrained when a declared option changes, so each must be read
    own = {f.name for f in dataclasses.fields(TrainingArguments)}
    for method, cls in OBJECTIVES.items():
        for adversary in ADVERSARIES if cls.uses_adversary else ["ascc"]:
            args = tiny_args(tmp_path / method / adversary, tiny_model_dir, method=method, ascc_steps=1,
                             adversary=adversary, adversary_query_budget=4)
            recorder = ReadRecorder(args)
            objective = build_objective(recorder)
            trainer = prepared(args, sentiment_task, objective=objective)
            # a step past any clean first epochs (a2t's), where every option is read
            objective.setup(dataclasses.replace(trainer.context(), current_epoch=lambda: float("inf")))
            batch = objective.collate(trainer.encoded["train"][:8], trainer.pad_token_id)
            terms = objective(trainer.model, batch)
            assert torch.isfinite(terms["loss"]), method
            terms["loss"].backward()
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters()), method
            declared = {f.name for f in dataclasses.fields(args)} - own
            assert recorder.read >= declared, (method, adversary, declared - recorder.read)


@pytest.mark.parametrize("objective", ["kl", "ce"])
def test_training_adversary_maximises_the_chosen_objective(tmp_path, tiny_model_dir, sentiment_task, objective):
    args = tiny_args(tmp_path, tiny_model_dir, method="ascc", ascc_objective=objective)
    trainer = prepared(args, sentiment_task)
    trainer.objective.setup(trainer.context())
    batch = trainer.objective.collate(trainer.encoded["train"][:16], trainer.pad_token_id)
    model = trainer.model.eval()  # no dropout: the clean logits are reproducible
    used = []
    search = trainer.objective.adversary.search.find_weights

    def recorded_search(*args, **kwargs):
        used.append(search(*args, **kwargs))
        return used[-1]

    trainer.objective.adversary.search.find_weights = recorded_search
    torch.manual_seed(0)
    trainer.objective.loss(model, batch)

    clean = classify(model, **model_inputs(batch)).logits.detach()
    found = {}
    for name in ("kl", "ce"):
        torch.manual_seed(0)  # the same Kaiming draw of the starting weights
        found[name] = ASCCSearch(steps=3, objective=name).find_weights(
            model, batch["substitute_ids"], batch["substitute_mask"], batch["attention_mask"],
            batch.get("token_type_ids"), clean_logits=clean, labels=batch["labels"])
    torch.testing.assert_close(used[0], found[objective])
    other = found["ce" if objective == "kl" else "kl"]
    assert not torch.allclose(used[0], other), "kl and ce searches should end at different weights"


@pytest.mark.parametrize("feature", ["cls", "mean"])
def test_rift_reads_the_chosen_feature_of_student_and_teacher(tmp_path, trained_tiny_dir, sentiment_task, feature):
    args = tiny_args(tmp_path, trained_tiny_dir, method="rift", feature=feature)
    trainer = prepared(args, sentiment_task)
    objective = trainer.objective
    objective.setup(trainer.context())
    batch = objective.collate(trainer.encoded["train"][:8], trainer.pad_token_id)
    with torch.no_grad():
        hidden = objective.teacher.bert(**model_inputs(batch)).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        expected = hidden[:, 0] if feature == "cls" else (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(objective.teacher_features(batch), expected, rtol=1e-5, atol=1e-5)
    student = objective.student(trainer.model.eval(), return_pooled=True, **model_inputs(batch)).pooled
    with torch.no_grad():
        own = trainer.model.bert(**model_inputs(batch)).last_hidden_state
        torch.testing.assert_close(student, own[:, 0] if feature == "cls" else (own * mask).sum(1) / mask.sum(1),
                                   rtol=1e-5, atol=1e-5)
