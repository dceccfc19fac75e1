"""Behaviours of the attacks that robust-accuracy numbers depend on, each checked against an answer computed here
independently: ASCC's search replayed with Adam on its documented objective, genetic's parent weights, PWWS's
saliency probes, TextFooler's visiting order, and how every attack (and a paired comparison) treats an example the
model misclassifies before any attack. scripts/mutation_check.py holds a deliberate bug for each."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_attacks import FAST, MISCLASSIFIED, ONE_CHANGE, SYNONYMS, WEIGHTS, BagOfWords, DictSource
from transformers import BertConfig, BertForSequenceClassification

from rift.attacks.ascc import REFERENCE_BATCH, ASCCAttack, ASCCSearch
from rift.attacks.genetic import Genetic
from rift.attacks.results import held_by_all
from rift.attacks.registry import build_attack
from rift.attacks.wrapper import ModelWrapper
from rift.data import Example
from rift.evaluation.paired import compare_methods
from rift.evaluation.robustness import examples_file, read_results, run_attack
from rift.text.words import split_words


class EmbeddedBagOfWords(BagOfWords):
    """test_attacks' bag of words with its per-token logit rows as input embeddings: ASCC, which mixes embeddings,
    then attacks the same classifier as the word-substitution attacks."""

    def get_input_embeddings(self):
        return self.table

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None):
        rows = self.table(input_ids) if inputs_embeds is None else inputs_embeds
        return SimpleNamespace(logits=(rows * attention_mask[..., None]).sum(1) + self.bias)


def true_probability(model, tokenizer, text: str, label: int) -> float:
    """p(label | text), asked of the model directly."""
    encoding = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=encoding["input_ids"], attention_mask=encoding["attention_mask"]).logits
    return logits.softmax(-1)[0, label].item()


def record_queries(monkeypatch) -> list[str]:
    """Every text the attacks' model wrapper is asked to score from now on, in order."""
    texts = []
    encode = ModelWrapper.encode

    def recording_encode(self, inputs):
        texts.extend(text for text, _ in inputs)
        return encode(self, inputs)

    monkeypatch.setattr(ModelWrapper, "encode", recording_encode)
    return texts


# ---- ASCC: the search is Adam on its stated objective ----


def replayed_ascc_weights(model, ids, mask, attention_mask, labels, clean_logits, initial, *, objective, steps,
                          learning_rate, sparsity_weight) -> torch.Tensor:
    """ASCC's documented search, written out: Adam on the logits w of each position's convex weights softmax(w)
    (over its valid slots), minimising -attack + sparsity_weight / 32 * sum_i mean_j H_ij, where attack is the
    summed cross-entropy of the labels or KL(p_clean || p_adversarial), and the mean entropy runs over example i's
    positions that have a substitute."""
    embeddings = model.get_input_embeddings()(ids).detach()
    substitutable = mask.sum(-1) > 1
    w = initial.clone().requires_grad_(True)
    adam = torch.optim.Adam([w], lr=learning_rate)

    def log_weights(logits):
        return logits.masked_fill(~mask, float("-inf")).log_softmax(-1)

    for _ in range(steps):
        weights = log_weights(w).exp()
        mixed = (embeddings * weights[..., None]).sum(2)
        log_p = model(inputs_embeds=mixed, attention_mask=attention_mask).logits.log_softmax(-1)
        if objective == "ce":
            attack = -log_p[torch.arange(len(labels)), labels].sum()
        else:
            p_clean = clean_logits.softmax(-1)
            attack = (p_clean * (p_clean.log() - log_p)).sum()
        entropy = -(weights * torch.where(mask, log_weights(w), 0.0)).sum(-1)
        mean_entropy = (entropy * substitutable).sum(-1) / substitutable.sum(-1)
        loss = -attack + sparsity_weight / REFERENCE_BATCH * mean_entropy.sum()
        adam.zero_grad()
        loss.backward()
        adam.step()
    return log_weights(w.detach()).exp()


@pytest.mark.parametrize("objective", ["ce", "kl"])
def test_ascc_search_ends_where_adam_on_its_documented_objective_ends(tokenizer, objective):
    """ASCC's weights after its steps equal those of Adam run here on the objective its docstring states (attack
    term and sparsity term, with their signs), from the same start, on a three-label classifier."""
    # weights drawn wider than BERT's default, so that the prediction depends on the input and the attack term counts
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3, initializer_range=0.5)
    model = BertForSequenceClassification(config).eval().requires_grad_(False)
    vocab = tokenizer.convert_tokens_to_ids
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    # per token position: the original token then its substitutes; slots past a row's end are masked out
    rows = [
        [[cls], vocab(["good", "fine", "nice", "bad"]), vocab(["movie", "film"]), vocab(["was"]),
         vocab(["great", "poor", "superb"]), [sep]],
        [[cls], vocab(["the"]), vocab(["plot", "story", "acting"]), vocab(["awful", "boring", "fine", "good"]), [sep],
         [pad]],
    ]
    ids = torch.tensor([[row + [0] * (4 - len(row)) for row in example] for example in rows])
    mask = torch.tensor([[[True] * len(row) + [False] * (4 - len(row)) for row in example] for example in rows])
    attention_mask = torch.tensor([[1] * 6, [1] * 5 + [0]])
    labels = torch.tensor([2, 0])
    clean_logits = model(input_ids=ids[..., 0], attention_mask=attention_mask).logits
    initial = torch.randn(ids.shape, generator=torch.Generator().manual_seed(1))
    settings = dict(objective=objective, steps=4, learning_rate=0.5, sparsity_weight=15.0)

    found = ASCCSearch(**settings).find_weights(model, ids, mask, attention_mask, clean_logits=clean_logits,
                                                labels=labels, initial=initial)
    expected = replayed_ascc_weights(model, ids, mask, attention_mask, labels, clean_logits, initial, **settings)
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-5)
    # both terms move the weights here, so a wrong sign or scale of either shows: the weights differ without the
    # sparsity term, and with it so heavy that the attack term is lost beside it (Adam's steps ignore the scale)
    for sparsity_weight in (0.0, 1e6):
        other = replayed_ascc_weights(model, ids, mask, attention_mask, labels, clean_logits, initial,
                                      **settings | dict(sparsity_weight=sparsity_weight))
        assert (expected - other).abs().max() > 0.1, sparsity_weight


# ---- genetic: parents are drawn by fitness 1 - p(y) ----


def test_genetic_draws_parents_with_weights_one_minus_their_true_label_probability(tokenizer, monkeypatch):
    """Every parent draw weighs each drawn member by 1 - p(y), p(y) asked of the model for that member's text."""
    model = EmbeddedBagOfWords(tokenizer, {"good": 3, "superb": 3, "nice": 1, "fine": 0, "film": -1})
    # no substitution flips the prediction: every generation runs, and its members differ in p(y)
    example = Example("a superb good movie .", 1)
    draws, parents = [], []
    choices, crossover = random.Random.choices, Genetic._crossover

    def recording_choices(self, population, weights=None, **options):
        drawn = choices(self, population, weights=weights, **options)
        draws.append((weights, drawn))
        return drawn

    def recording_crossover(first, second, target, rng):
        parents.append((target.inputs(first)[0], target.inputs(second)[0]))
        return crossover(first, second, target, rng)

    monkeypatch.setattr(random.Random, "choices", recording_choices)
    monkeypatch.setattr(Genetic, "_crossover", staticmethod(recording_crossover))
    attack = build_attack("genetic", model, tokenizer, DictSource({"good": ["nice", "fine"], "movie": ["film"]}),
                          population=6, generations=3)
    [result] = attack.attack([example])

    assert result.status == "failed"
    assert len(draws) == len(parents) == 3 * 5  # two parents for each of the 5 children of each generation
    fitnesses = set()
    for (member_weights, drawn), texts in zip(draws, parents):
        for index, text in zip(drawn, texts):
            fitness = 1 - true_probability(model, tokenizer, text, example.label)
            assert member_weights[index] == pytest.approx(fitness, rel=1e-4), text
            fitnesses.add(round(fitness, 6))
    assert len(fitnesses) > 1  # members of different fitness were drawn


# ---- PWWS: saliency probes put the unknown token in place of one word ----


def test_pwws_saliency_probes_replace_one_word_by_the_unknown_token(tokenizer, monkeypatch):
    """PWWS's probes are the text with exactly one word (each word that has substitutes) replaced by the
    tokenizer's unknown token, which the model sees as that token."""
    texts = record_queries(monkeypatch)
    text = "the good movie was great ."
    attack = build_attack("pwws", EmbeddedBagOfWords(tokenizer, WEIGHTS), tokenizer, DictSource(SYNONYMS))
    attack.attack([Example(text, 1)])

    unknown = tokenizer.unk_token
    assert unknown == "[UNK]"
    words = [w.text for w in split_words(text)]
    with_substitutes = [i for i, word in enumerate(words) if word in SYNONYMS]
    expected = {" ".join(words[:i] + [unknown] + words[i + 1 :]) for i in with_substitutes}
    assert {t for t in texts if unknown in t} == expected
    for probe in expected:
        assert tokenizer(probe)["input_ids"].count(tokenizer.unk_token_id) == 1


# ---- TextFooler: words visited in descending importance ----


def test_textfooler_tries_words_in_descending_deletion_importance(tokenizer, monkeypatch):
    """TextFooler tries substitutes word by word in descending importance, the drop of p(y) when the word is
    deleted: neither text order nor ascending importance."""
    # each sentiment word weighs differently; "movie" keeps the clean prediction from being certain. Every
    # substitute raises p(y), so no substitution is kept and every word is visited on the original text.
    weights = {"good": 2, "great": 4, "fine": 1, "superb": 3, "movie": -8, "wonderful": 6}
    model = EmbeddedBagOfWords(tokenizer, weights)
    text = "the good great fine superb movie ."
    words = [w.text for w in split_words(text)]
    sentiment = [1, 2, 3, 4]
    source = DictSource({words[i]: ["wonderful"] for i in sentiment})
    texts = record_queries(monkeypatch)
    [result] = build_attack("textfooler", model, tokenizer, source, constraints=()).attack([Example(text, 1)])

    assert result.status == "failed" and result.changes == []
    p_clean = true_probability(model, tokenizer, text, 1)
    importance = {i: p_clean - true_probability(model, tokenizer, " ".join(words[:i] + words[i + 1 :]), 1)
                  for i in sentiment}
    expected = sorted(sentiment, key=lambda i: -importance[i])
    assert expected == [2, 4, 1, 3]
    tried = []  # the position each substitution candidate changes, in the order they were asked for
    for queried in texts:
        changed = [i for i, (old, new) in enumerate(zip(words, queried.split())) if old != new]
        if len(queried.split()) == len(words) and len(changed) == 1 and changed[0] not in tried:
            tried.append(changed[0])
    assert tried == expected


# ---- a misclassified example: skipped by every attack, and not held in a paired comparison ----


def build(name: str, model, tokenizer, source):
    """The attack ``name``, ASCC included, with settings that keep these tests fast."""
    if name == "ascc":
        return ASCCAttack(model, tokenizer, source, steps=10, max_substitutes=4)
    return build_attack(name, model, tokenizer, source, **FAST.get(name, {}))


@pytest.mark.parametrize("name", ["pwws", "genetic", "textfooler", "ascc"])
def test_every_attack_skips_a_misclassified_example_untouched(name, tokenizer):
    """An example misclassified before the attack comes back skipped, as it was: no change, its clean prediction
    and probabilities as the adversarial ones; the correctly classified example beside it is attacked."""
    model = EmbeddedBagOfWords(tokenizer, WEIGHTS)
    # the misclassified example's word has substitutes too, one that would move its prediction a long way
    synonyms = SYNONYMS | {"nice": ["great", "bad"]}
    skipped, attacked = build(name, model, tokenizer, DictSource(synonyms)).attack([MISCLASSIFIED, ONE_CHANGE])

    assert skipped.status == "skipped" and skipped.changes == []
    assert (skipped.adversarial_text, skipped.adversarial_text_pair) == (MISCLASSIFIED.text, None)
    assert skipped.clean_prediction != MISCLASSIFIED.label
    assert skipped.adversarial_prediction == skipped.clean_prediction
    assert skipped.adversarial_probabilities == skipped.clean_probabilities
    # no attack asks the model for anything beyond the clean prediction, ASCC's search included
    assert skipped.queries == 1
    assert attacked.status == "succeeded" and attacked.changes != []


def test_a_paired_comparison_does_not_count_a_skipped_example_as_held(tokenizer, tmp_path):
    """An example one model misclassifies (skipped) and the other holds counts for the holder alone; one both
    misclassify counts for neither side."""
    examples = [Example(f"a {word} movie .", 1) for word in ("good", "great", "fine", "superb")]
    # no substitutes: an example classified correctly is held, a misclassified one skipped
    correct = {"method": {"good", "superb"}, "baseline": {"great", "superb"}}
    records = []
    for method, words in correct.items():
        weights = {word: 3 if word in words else -3 for word in ("good", "great", "fine", "superb")}
        attack = build_attack("pwws", EmbeddedBagOfWords(tokenizer, weights), tokenizer, DictSource({}))
        directory = tmp_path / method
        directory.mkdir()
        summary = run_attack(attack, examples, range(len(examples)), directory, show_progress=False)
        assert summary["num_correct"] == summary["num_robust"] == 2
        records.append(dict(task="t", method=method, seed=0, directory=str(directory)))

    [comparison] = compare_methods(records, ["baseline", "method"], ["pwws"],
                                   lambda record, attack: held_by_all(
                                       {attack: read_results(examples_file(Path(record["directory"]), attack))}))
    held = comparison["held_only"]["pwws"]
    # "good": the method only; "great": the baseline only; "superb": both; "fine": neither
    assert (held["method"], held["baseline"], held["both"], held["examples"]) == (1, 1, 1, 4)
