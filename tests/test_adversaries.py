"""The training adversaries (rift.adversaries): one contract, checked for each of them."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import NEGATIVE, POSITIVE, prepared, sentiment_examples

from rift.adversaries import ADVERSARIES
from rift.adversaries.base import WordAdversary, encode_texts
from rift.adversaries.discrete import GuidedGreedySearch, first_order_estimates
from rift.mixing import mixed_inputs, position_table
from rift.arguments import TrainingArguments, adversary_names
from rift.attacks.engine import Target
from rift.attacks.results import AttackResult, WordChange, summarize
from rift.cli import main
from rift.data import Example, TaskData
from rift.evaluation.surface import mark_training_surface
from rift.errors import RiftError
from rift.models import classify, input_embeddings
from rift.objectives import OBJECTIVES, build_objective
from rift.substitutions import SubstitutionSource
from rift.substitutions.tokens import piece_ids
from rift.text.words import align, replace_words, split_words
from rift.data.batching import model_inputs
from rift.data.sampling import training_batch_sampler

# sentiment words whose substitutes are all of several WordPiece pieces ('atrocious' = at ##ro ##cious), a word
# of several pieces with one-piece substitutes ('tedious' = ted ##ious), and a one-piece word with one-piece
# substitutes ('movie'), the only kind the token-level ASCC can mix
MULTI_PIECE = {**{word: ["atrocious", "abysmal", "execrable"] for word in POSITIVE},
               **{word: ["marvellous", "splendiferous"] for word in NEGATIVE},
               "tedious": ["boring", "dull"], "movie": ["film", "picture"]}
K = 8


class MultiPieceSource(SubstitutionSource):
    name = "multi-piece"

    def substitutes(self, words, position):
        return list(MULTI_PIECE.get(words[position].lower(), []))


def set_up(tmp_path: Path, model_dir: str, task: TaskData, adversary: str, method: str = "ascc", **overrides):
    values = dict(output_dir=str(tmp_path / "run"), model=model_dir, epochs=1, batch_size=16, learning_rate=3e-3,
                  max_length=32, seed=0, ascc_steps=3, method=method, adversary=adversary, max_substitutes=K)
    args = TrainingArguments.build(unread="drop", **values | overrides)
    trainer = prepared(args, task)
    objective = trainer.objective
    objective.adversary = ADVERSARIES[adversary](args, source=MultiPieceSource())
    objective.setup(trainer.context())
    return trainer, objective


@pytest.fixture(scope="module")
def task() -> TaskData:
    train = sentiment_examples(32, 0) + [Example("the plot was tedious and the acting bad .", 0),
                                         Example("a tedious but good film .", 1)]
    return TaskData("multi-piece", ["negative", "positive"], {"train": train, "dev": sentiment_examples(8, 1)})


def test_the_names_the_flags_offer_are_the_registries():
    assert adversary_names() == tuple(ADVERSARIES)


def changed_words(original: Example, adversarial: Example) -> list[tuple[int, str, str]]:
    before, after = split_words(original.text), split_words(adversarial.text)
    assert len(before) == len(after)
    return [(i, a.text, b.text) for i, (a, b) in enumerate(zip(before, after)) if a.text != b.text]


@pytest.mark.parametrize("name", ["discrete", "random", "a2t"])
def test_word_adversaries_use_only_allowed_substitutes_and_make_multi_piece_ones(tmp_path, trained_tiny_dir, task,
                                                                                 tokenizer, name):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, name)
    adversary = objective.adversary
    assert isinstance(adversary, WordAdversary)
    items = trainer.encoded["train"]
    batch = objective.collate(items, trainer.pad_token_id)
    adversarial, _ = adversary.adversarial_examples(trainer.model, batch)
    changes = []
    for item, new in zip(items, adversarial):
        original = task.splits["train"][item.index]
        assert new.label == original.label
        for position, old, word in changed_words(original, new):
            assert word in MULTI_PIECE[old.lower()], (old, word)
            changes.append((old, word))
    multi_piece = [(old, new) for old, new in changes if len(tokenizer.tokenize(new)) > 1]
    assert multi_piece, changes  # e.g. good -> atrocious (3 pieces)
    if name == "random":  # every substitutable word is redrawn: multi-piece originals change too
        assert any(old == "tedious" for old, _ in changes), changes
    # x' is those texts, tokenized
    x = adversary.perturb(trainer.model, batch).inputs
    decoded = tokenizer.batch_decode(x["input_ids"], skip_special_tokens=True)
    assert decoded == [tokenizer.decode(tokenizer(e.text)["input_ids"], skip_special_tokens=True) for e in adversarial]


@pytest.mark.parametrize("name", ["discrete", "a2t"])
def test_the_searching_adversaries_break_most_examples_of_a_standard_model(tmp_path, trained_tiny_dir, task, name):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, name)
    items = trainer.encoded["train"]
    batch = objective.collate(items, trainer.pad_token_id)
    x = objective.adversary.perturb(trainer.model, batch)
    with torch.no_grad():
        clean = classify(trainer.model.eval(), **model_inputs(batch)).logits.argmax(-1)
        adversarial = classify(trainer.model, **x.inputs).logits.argmax(-1)
    correct = clean == batch["labels"]
    broken = (adversarial != batch["labels"]) & correct
    assert correct.float().mean() > 0.8
    assert broken.sum() >= 0.5 * correct.sum(), (broken.sum(), correct.sum())


def test_ascc_holds_only_single_token_substitutes_of_single_token_words(tmp_path, trained_tiny_dir, task, tokenizer):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, "ascc")
    items = trainer.encoded["train"]
    batch = objective.collate(items, trainer.pad_token_id)
    ids, mask = batch["substitute_ids"], batch["substitute_mask"]
    for row, item in enumerate(items):
        for position in range(len(item.alignment.input_ids)):
            slots = ids[row, position][mask[row, position]].tolist()
            if len(slots) == 1:
                continue
            original = tokenizer.convert_ids_to_tokens(slots[0])
            allowed = set(MULTI_PIECE[original])
            assert {tokenizer.convert_ids_to_tokens(s) for s in slots[1:]} <= allowed
    assert mask[..., 1:].any()


def test_coverage_is_full_for_word_adversaries_and_partial_for_ascc(tmp_path, trained_tiny_dir, task):
    surface = {}
    for name in ADVERSARIES:
        _, objective = set_up(tmp_path / name, trained_tiny_dir, task, name)
        surface[name] = objective.adversary.coverage
    for name in ("discrete", "random", "word-ascc", "a2t"):
        assert surface[name]["share_substitutions"] == 1.0
        assert surface[name]["substitutions"] == surface["ascc"]["substitutions"]
    # by hand: ascc can mix only 'movie' -> film / picture
    words = [w.text.lower() for e in task.splits["train"] for w in split_words(e.text)]
    ascc = surface["ascc"]
    assert ascc["words_with_substitutes"] == sum(w in MULTI_PIECE for w in words)
    assert ascc["substitutions"] == sum(len(MULTI_PIECE.get(w, [])) for w in words)
    assert ascc["words_represented"] == words.count("movie") > 0
    assert ascc["substitutions_represented"] == 2 * words.count("movie")


@pytest.mark.parametrize("name", list(ADVERSARIES))
def test_adversary_leaves_the_model_and_its_gradients_untouched(tmp_path, trained_tiny_dir, task, name):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, name)
    model = trainer.model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = objective.collate(trainer.encoded["train"][:16], trainer.pad_token_id)
    objective.adversary.perturb(model, batch)
    assert model.training
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", list(ADVERSARIES))
def test_the_clean_reference_is_computed_without_dropout(tmp_path, trained_tiny_dir, task, name):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, name)
    model = trainer.model
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5  # train-mode logits would be far from eval-mode ones
    batch = objective.collate(trainer.encoded["train"][:16], trainer.pad_token_id)
    with torch.no_grad():
        expected = classify(model.eval(), **model_inputs(batch)).logits
        noisy = classify(model.train(), **model_inputs(batch)).logits
    assert not torch.allclose(noisy, expected, atol=1e-3)
    reference = objective.adversary.perturb(model, batch).clean_logits
    torch.testing.assert_close(reference, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", list(OBJECTIVES))
def test_class_balanced_batches_are_an_option_of_every_method(tmp_path, tiny_model_dir, sentiment_task, method):
    train = sentiment_task.splits["train"][:30] + [e for e in sentiment_task.splits["train"] if e.label == 1][:20]
    unbalanced = TaskData("unbalanced", sentiment_task.label_names, {"train": train})
    for balanced in (True, False):
        args = TrainingArguments.build(output_dir=str(tmp_path / f"{balanced}"), model=tiny_model_dir, method=method,
                                 batch_size=10, class_balanced=balanced, max_length=32)
        sampler = training_batch_sampler([e.label for e in train], args.batch_size, args.seed, args.class_balanced,
                                         build_objective(args).class_balanced)
        batches = list(sampler)
        counts = [sorted(sum(train[i].label == c for i in batch) for c in (0, 1)) for batch in batches]
        if balanced:
            assert counts and all(c == [5, 5] for c in counts), counts
        else:
            assert sum(len(b) for b in batches) == len(train)
            assert any(c != [5, 5] for c in counts), counts


@pytest.mark.parametrize("adversary", ["discrete", "random"])
def test_rift_trains_with_a_word_adversary_from_the_command_line(tmp_path, tiny_model_dir, adversary):
    out = tmp_path / "run"  # SST-2 and the counter-fitted table from the shared data folder
    code = main(["train", "--task", "sst2", "--model", tiny_model_dir, "--method", "rift", "--preset", "study",
                 "--adversary", adversary, "--max-train-examples", "32", "--max-dev-examples", "16",
                 "--max-test-examples", "16", "--epochs", "1", "--batch-size", "16", "--max-length", "32",
                 "--retention-examples", "0", "--logging-steps", "1", "--output-dir", str(out),
                 *(["--adversary-query-budget", "8"] if adversary == "discrete" else [])])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["adversary"]["name"] == adversary
    assert metrics["adversary"]["coverage"]["share_substitutions"] == 1.0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    rows = [row for row in log if "train/kl" in row]
    assert rows and all(row["train/kl"] >= 0 and row["train/mi"] > 0 for row in rows)
    # attacked with the training's source, every change lies in the surface this adversary trained on
    attacked = tmp_path / "attack"
    assert main(["attack", "--model", str(out), "--task", "sst2", "--attack", "pwws", "--num-examples", "6",
                 "--max-length", "32", "--output-dir", str(attacked)]) == 0
    results = json.loads((attacked / "results.json").read_text())
    assert results["training_adversary"] == adversary
    records = [json.loads(line) for line in (attacked / "examples_pwws.jsonl").read_text().splitlines()]
    changes = [c for r in records for c in r["changes"]]
    assert changes and all(c["in_training_surface"] is True for c in changes)
    surface = results["attacks"]["pwws"]["outside_training_surface"]
    assert surface is None or surface["changes_outside"] == 0
    # a record written without the marks gets them when the attack is run again
    path = attacked / "examples_pwws.jsonl"
    path.write_text("".join(json.dumps(r | {"changes": [c | {"in_training_surface": None} for c in r["changes"]]}) + "\n"
                            for r in records))
    assert main(["attack", "--model", str(out), "--task", "sst2", "--attack", "pwws", "--num-examples", "6",
                 "--max-length", "32", "--output-dir", str(attacked)]) == 0
    again = [json.loads(line) for line in path.read_text().splitlines()]
    assert again == records


def test_each_change_is_marked_by_whether_the_training_adversary_could_make_it(tokenizer):
    result = AttackResult(
        index=0, label=1, status="succeeded", text="a good movie and a tedious plot .", text_pair=None,
        adversarial_text="a atrocious film and a boring story .", adversarial_text_pair=None, clean_prediction=1,
        clean_probabilities=[0.1, 0.9], adversarial_prediction=0, adversarial_probabilities=[0.6, 0.4],
        changes=[WordChange(1, "good", "atrocious"), WordChange(2, "movie", "film"),
                 WordChange(5, "tedious", "boring"), WordChange(6, "plot", "story")],
        num_words=7, queries=10, seconds=0.1)
    marks = {}
    for name in ADVERSARIES:
        args = TrainingArguments.build(output_dir="unused", method="ascc", adversary=name, max_substitutes=K)
        adversary = ADVERSARIES[name](args, source=MultiPieceSource())
        adversary.bind(tokenizer)
        marked = AttackResult.from_dict(result.to_dict())
        mark_training_surface(marked, adversary, 32)
        marks[name] = [c.in_training_surface for c in marked.changes]
    # ascc: only the one-piece word with a one-piece substitute; the word adversaries: all the table allows
    assert marks["ascc"] == [False, True, False, False]
    assert marks["discrete"] == marks["random"] == marks["word-ascc"] == [True, True, True, False]
    marked.changes = [replace(c, in_training_surface=m) for c, m in zip(result.changes, marks["ascc"])]
    assert summarize([marked])["outside_training_surface"] == {
        "succeeded": 1, "with_change_outside": 1, "share_with_change_outside": 1.0,
        "changes": 4, "changes_outside": 3, "share_changes_outside": 0.75}
    assert summarize([result])["outside_training_surface"] is None  # unmarked: unknown


def test_first_order_estimates_are_hotflips_term_and_the_search_scores_the_best_first(tokenizer):
    alignment = align(tokenizer, "a good movie .")
    embedding = torch.randn(tokenizer.vocab_size, 4, generator=torch.Generator().manual_seed(0))
    gradient = torch.randn(len(alignment.input_ids), 4, generator=torch.Generator().manual_seed(1))
    surface = [[], ["atrocious", "fine"], ["film"], []]
    estimates = first_order_estimates(tokenizer, embedding, alignment, gradient, surface)
    good, movie = alignment.word_tokens[0][1][0], alignment.word_tokens[0][2][0]
    e = lambda word: embedding[tokenizer(word, add_special_tokens=False)["input_ids"]].mean(0)  # noqa: E731
    # one piece each: exactly (E(s) - E(w)) . g; several pieces: the mean of the pieces' embeddings
    assert estimates[2, "film"] == pytest.approx(float((e("film") - e("movie")) @ gradient[movie]), rel=1e-5)
    assert estimates[1, "atrocious"] == pytest.approx(float((e("atrocious") - e("good")) @ gradient[good]), rel=1e-5)
    assert len(tokenizer.tokenize("atrocious")) == 3

    search = GuidedGreedySearch(None, MultiPieceSource(), candidates=2, query_budget=10)
    example = Example("a good movie .", 1)
    target = Target(example, split_words(example.text), surface, 3, torch.tensor([0.2, 0.8]))
    search.estimates[id(example)] = estimates
    first = next(search.search(target, None))
    ranked = sorted(estimates, key=lambda pair: -estimates[pair])[:2]
    assert first == [{i: word} for i, word in ranked]


def one_hot(batch: dict[str, torch.Tensor], choices: list[dict[int, int]]) -> torch.Tensor:
    """Convex weights [B, R, C] at a vertex: candidate ``choices[b][row]`` of a row, else its original (0)."""
    weights = torch.zeros(batch["mix_row_mask"].shape)
    weights[..., 0] = 1
    for b, chosen in enumerate(choices):
        for row, candidate in chosen.items():
            weights[b, row] = 0
            weights[b, row, candidate] = 1
    return weights


@pytest.mark.parametrize("pairs", [False, True])
def test_word_ascc_at_every_vertex_is_exactly_the_discrete_text(tmp_path, trained_tiny_dir, task, tokenizer, pairs):
    if pairs:  # the hypothesis is attacked, the premise (segment 0, its own token type) stays
        task = TaskData("pairs", task.label_names, {
            split: [Example("the premise , as stated .", e.label, e.text) for e in examples]
            for split, examples in task.splits.items()})
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, "word-ascc")
    adversary, model = objective.adversary, trainer.model.eval()
    items = trainer.encoded["train"]
    batch = objective.collate(items, trainer.pad_token_id)
    rng = random.Random(0)
    choices, texts, multi_piece = [], [], 0
    for item in items:
        example = task.splits["train"][item.index]
        layout = adversary.layouts[item.index]
        attacked = example.text_pair if pairs else example.text
        words = split_words(attacked)
        chosen, replacements = {}, {}
        for index, row in layout.word_rows.items():
            prefix = " " if index else ""
            by_pieces = {piece_ids(tokenizer, prefix, s): s for s in MULTI_PIECE[words[index].text.lower()]}
            # every candidate of the row is the word itself or one of its allowed substitutes
            assert set(layout.rows[row][1:]) <= set(by_pieces)
            candidate = rng.randrange(len(layout.rows[row]))
            if candidate:
                chosen[row], replacements[index] = candidate, by_pieces[layout.rows[row][candidate]]
                multi_piece += len(layout.rows[row][candidate]) != len(layout.rows[row][0])
        choices.append(chosen)
        changed = replace_words(attacked, words, replacements)
        texts.append(replace(example, text_pair=changed) if pairs else replace(example, text=changed))
    assert multi_piece >= 5  # words of one piece became three, and three became one
    table, offset = position_table(model)
    with torch.no_grad():
        embeddings = input_embeddings(model)(batch["mix_ids"])
        mixed = classify(model, **mixed_inputs(embeddings, table, offset, batch, one_hot(batch, choices)),
                         return_pooled=True, feature="mean")
        discrete = classify(model, **encode_texts(tokenizer, texts, 32, "cpu"), return_pooled=True, feature="mean")
    torch.testing.assert_close(mixed.logits, discrete.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed.pooled, discrete.pooled, rtol=1e-5, atol=1e-5)


def test_word_ascc_between_vertices_mixes_presence_and_position(tmp_path, trained_tiny_dir, task, tokenizer):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, "word-ascc")
    model = trainer.model.eval()
    index = next(i for i, e in enumerate(task.splits["train"]) if e.text.startswith("a tedious but good"))
    item = next(item for item in trainer.encoded["train"] if item.index == index)
    batch = objective.collate([item], trainer.pad_token_id)
    layout = objective.adversary.layouts[index]
    good = layout.word_rows[3]  # 'good' (1 piece) or 'atrocious' (3), 'abysmal' (3), 'execrable' (3)
    assert [len(c) for c in layout.rows[good]] == [1, 3, 3, 3]
    weights = one_hot(batch, [{}])
    weights[0, good, :2] = 0.5  # half 'good', half 'atrocious'
    table, offset = position_table(model)
    embeddings = input_embeddings(model)(batch["mix_ids"])
    inputs = mixed_inputs(embeddings, table, offset, batch, weights)
    first = batch["mix_rows"][0].tolist().index(good)
    presence = inputs["attention_mask"][0]
    assert presence[first:first + 3].tolist() == [1.0, 0.5, 0.5]
    # slot 0 mixes 'good' and 'at' equally; the token after the word sits at position first + 2 (1 + 0.5 + 0.5)
    word = input_embeddings(model).weight
    ids = batch["mix_ids"][0, first]
    torch.testing.assert_close(inputs["inputs_embeds"][0, first] + table[first],
                               0.5 * (word[ids[0]] + word[ids[1]]) + table[first])
    after = first + 3
    torch.testing.assert_close(inputs["inputs_embeds"][0, after] + table[after],
                               word[batch["mix_ids"][0, after, 0]] + table[first + 2])
    # and the search's x' is a convex combination: presences in [0, 1], fixed tokens fully present
    x = objective.adversary.perturb(model, batch).inputs
    assert ((x["attention_mask"] >= 0) & (x["attention_mask"] <= 1)).all()
    assert x["attention_mask"][0, 0] == 1


def test_word_ascc_refuses_a_model_without_absolute_positions_in_one_line(tmp_path, trained_tiny_dir, task):
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, "word-ascc")
    trainer.model.config.position_embedding_type = "relative_key"
    with pytest.raises(RiftError, match="absolute position embeddings"):
        position_table(trainer.model)


def test_rift_trains_with_word_ascc_from_the_command_line(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    code = main(["train", "--task", "sst2", "--model", tiny_model_dir, "--method", "rift", "--preset", "study",
                 "--adversary", "word-ascc", "--ascc-steps", "2", "--max-train-examples", "32",
                 "--max-dev-examples", "16", "--max-test-examples", "16", "--epochs", "1", "--batch-size", "16",
                 "--max-length", "64", "--retention-examples", "0", "--feature", "mean", "--logging-steps", "1",
                 "--output-dir", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    coverage = metrics["adversary"]["coverage"]
    assert metrics["adversary"]["name"] == "word-ascc"
    # only a substitute that would push a text past --max-length is left out; these sentences are short
    assert coverage["share_substitutions"] == 1.0 and coverage["substitutions"] > 100, coverage
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    rows = [row for row in log if "train/kl" in row]
    assert rows and all(row["train/kl"] >= 0 and row["train/mi"] > 0 for row in rows)


def test_word_ascc_leaves_out_substitutes_that_would_not_fit_and_says_so(tokenizer):
    alignment = align(tokenizer, "a good movie .", max_length=8)  # [CLS] a good movie . [SEP]: room for 2 more
    args = TrainingArguments.build(output_dir="unused", method="ascc", adversary="word-ascc", max_substitutes=K, max_length=8)
    adversary = ADVERSARIES["word-ascc"](args, source=MultiPieceSource())
    adversary.bind(tokenizer)
    layout = adversary.layout(alignment)
    # good's three substitutes have 3 pieces each: its block grows by 2, all the room; 'movie''s have one
    assert adversary.can_produce(alignment, 1, "atrocious") and adversary.can_produce(alignment, 2, "film")
    assert layout.substitutions == 3 + 2 and layout.substitutions_represented == 5
    tight = align(tokenizer, "a good movie .", max_length=7)
    args = TrainingArguments.build(output_dir="unused", method="ascc", adversary="word-ascc", max_substitutes=K, max_length=7)
    adversary = ADVERSARIES["word-ascc"](args, source=MultiPieceSource())
    adversary.bind(tokenizer)
    assert not adversary.can_produce(tight, 1, "atrocious") and adversary.can_produce(tight, 2, "film")  # room 1
    assert adversary.layout(tight).substitutions_represented == 2


class DictSource(SubstitutionSource):
    def __init__(self, name: str, table: dict[str, list[str]]):
        self.name, self.table = name, table

    def substitutes(self, words, position):
        return list(self.table.get(words[position].lower(), []))


@pytest.mark.parametrize("name", ["discrete", "ascc", "word-ascc"])
def test_an_adversary_on_a_union_stays_inside_it_and_reports_each_sources_coverage(tmp_path, trained_tiny_dir, task,
                                                                                   name):
    from rift.substitutions import UnionSource

    # one source of one-piece substitutes, one of multi-piece ones ('atrocious' = at ##ro ##cious)
    single = DictSource("single", {"movie": ["film"], **{word: ["boring"] for word in POSITIVE}})
    multi = DictSource("multi", {"movie": ["picture"], **{word: ["atrocious", "abysmal"] for word in POSITIVE}})
    # one substitute per source: a union holds up to one of each, and the embedding-space mixes make room for both
    trainer, objective = set_up(tmp_path, trained_tiny_dir, task, name, max_substitutes=1)
    adversary = ADVERSARIES[name](objective.args, source=UnionSource([single, multi]))
    objective.adversary = adversary
    objective.setup(trainer.context())
    adversary.log_coverage()
    by_source = adversary.coverage["by_source"]
    assert list(by_source) == ["single", "multi"]
    if name == "discrete":  # real texts: every substitution of either source
        assert by_source["single"]["share_substitutions"] == by_source["multi"]["share_substitutions"] == 1.0
        items = trainer.encoded["train"]
        batch = objective.collate(items, trainer.pad_token_id)
        adversarial, _ = adversary.adversarial_examples(trainer.model, batch)
        changed = [change for item, new in zip(items, adversarial)
                   for change in changed_words(task.splits["train"][item.index], new)]
        assert changed and all(new in single.table.get(old.lower(), []) + multi.table.get(old.lower(), [])
                               for _, old, new in changed)
    elif name == "ascc":  # token-level ASCC: the one-piece substitutes of one-piece words only, of both sources
        assert by_source["single"]["share_substitutions"] > by_source["multi"]["share_substitutions"] > 0
    else:  # word-ascc: every substitution of both, in rows one candidate wider than either source alone
        assert by_source["single"]["share_substitutions"] == by_source["multi"]["share_substitutions"] == 1.0
        batch = objective.collate(trainer.encoded["train"][:8], trainer.pad_token_id)
        assert batch["mix_row_mask"].shape[-1] == 3 and batch["mix_row_mask"].sum(-1).max() == 3
        adversary.perturb(trainer.model, batch)
