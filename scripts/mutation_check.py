"""Does the test suite catch the bugs it exists for? Each mutation below is a small deliberate bug (those that an
audit found the suite blind to, and a few more); for each, the source and tests are copied to a scratch folder, the
bug is applied there, and the tests that cover it run against the mutated copy. A mutation the tests let pass is
reported as missed and the script exits with 1.

    .venv/bin/python scripts/mutation_check.py              # every mutation (about 5 minutes on 2 cores)
    .venv/bin/python scripts/mutation_check.py mixout       # those whose name contains "mixout"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Mutation:
    name: str
    file: str  # under src/rift/
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids or files under tests/


ASCC_REPLAY = "test_guards_attacks.py::test_ascc_search_ends_where_adam_on_its_documented_objective_ends"
TEXTFOOLER_ORDER = "test_guards_attacks.py::test_textfooler_tries_words_in_descending_deletion_importance"
SKIPPED = "test_guards_attacks.py::test_every_attack_skips_a_misclassified_example_untouched"

MUTATIONS = [
    Mutation("infobert: the robust band from the lowest ranks", "objectives/infobert.py",
             "ranked[math.ceil(n * low):math.ceil(n * high)]", "ranked[:math.ceil(n * high) - math.ceil(n * low)]",
             ("test_defences.py",)),
    Mutation("infobert: the anchor is the first token of the embedding layer, not the last [CLS]",
             "objectives/infobert.py", "local, anchor = embedded[examples, tokens][order], last[examples, 0][order]",
             "local, anchor = embedded[examples, tokens][order], embedded[examples, 0][order]", ("test_defences.py",)),
    Mutation("infobert: the bottleneck without its half", "objectives/infobert.py",
             "return ((tokens - tokens[partners]) ** 2).sum(-1).mean() / 2",
             "return ((tokens - tokens[partners]) ** 2).sum(-1).mean()", ("test_defences.py",)),
    Mutation("a2t: words in their text order, not by gradient", "adversaries/a2t.py",
             "key=lambda i: (-importance.get(i, 0.0), i))", "key=lambda i: i)", ("test_defences.py",)),
    Mutation("a2t: no minimum of changed words", "adversaries/a2t.py",
             "max(math.ceil(self.max_changed_share * num_words - 1e-9), self.min_changes)",
             "math.ceil(self.max_changed_share * num_words - 1e-9)", ("test_defences.py",)),
    Mutation("a2t: the first epoch not clean", "objectives/a2t.py",
             "if self.current_epoch() < self.args.clean_epochs:", "if False:", ("test_defences.py",)),
    Mutation("dne: hop 2 at the full concentration", "prediction.py",
             "return torch.where(hops >= 2, alpha * decay, alpha) * row_mask", "return alpha * row_mask",
             ("test_defences.py",)),
    Mutation("dne: the ascent step unnormalised", "objectives/dne.py",
             "step = gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-6)", "step = gradient",
             ("test_defences.py",)),
    Mutation("dne: the average of raw logits", "prediction.py",
             "return torch.stack([F.normalize(logits, dim=-1) for logits in passes]).mean(0).cpu()",
             "return torch.stack(passes).mean(0).cpu()", ("test_defences.py",)),
    Mutation("dne: the draws seeded by the batch, not the input", "prediction.py",
             "seed = zlib.crc32(np.asarray(input_ids, dtype=np.int64).tobytes())", "seed = len(input_ids) * 0",
             ("test_defences.py",)),
    Mutation("worst case: an example held by any attack counts", "attacks/results.py",
             'return {i: all(results[i].status == "failed" for results in results_by_attack.values()) for i in sorted(common)}',
             'return {i: any(results[i].status == "failed" for results in results_by_attack.values()) for i in sorted(common)}',
             ("test_attack_cli.py", "test_bench.py")),
    Mutation("samples: not nested", "evaluation/robustness.py",
             "    random.Random(seed).shuffle(order)\n", "    random.Random(seed + (num_examples or 0)).shuffle(order)\n",
             ("test_attack_cli.py",)),
    Mutation("union: the second source's substitutes left out", "substitutions/__init__.py",
             "        for member in self.members:\n            for word in member.substitutes(words, position):",
             "        for member in self.members[:1]:\n            for word in member.substitutes(words, position):",
             ("test_substitutions.py", "test_adversaries.py")),
    Mutation("inputs: a changed file not noticed", "inputs.py", "        if path in current:\n            return True",
             "        if path in current:\n            return False", ("test_inputs.py",)),
    Mutation("pgd: the ascent step along the raw gradient, not the normalised one", "objectives/pgd.py",
             "step_size * gradient / per_example_norm(gradient).clamp(min=1e-8)", "step_size * gradient",
             ("test_defences.py",)),
    Mutation("pgd: no projection onto the ball", "objectives/pgd.py", "if max_norm > 0:", "if False:",
             ("test_defences.py",)),
    Mutation("freelb: trains on the last iterate only", "objectives/freelb.py",
             "loss = torch.stack(losses).mean()", "loss = losses[-1]", ("test_defences.py",)),
    Mutation("pgd: trains on the clean input", "objectives/pgd.py",
             "inputs_embeds=input_embeddings(model)(ids) + delta", "inputs_embeds=input_embeddings(model)(ids)",
             ("test_defences.py",)),
    Mutation("rift: MI term detached from the graph (rift becomes ascc)", "objectives/rift.py",
             'return {"mi": self.args.alpha * mi}', 'return {"mi": self.args.alpha * mi.detach()}',
             ("test_objectives.py",)),
    Mutation("rift: student features detached before the MI heads", "objectives/rift.py",
             "mi = self.mutual_information_loss(student.float(),", "mi = self.mutual_information_loss(student.float().detach(),",
             ("test_objectives.py",)),
    Mutation("rift: every projection head fed the whole batch", "objectives/rift.py",
             "info_nce(g(student_features[members]), h(teacher_features[members]), self.args.tau)",
             "info_nce(g(student_features), h(teacher_features), self.args.tau)", ("test_objectives.py",)),
    Mutation("mixout: mixing removed", "objectives/adversarial.py",
             "parameters = self._mixed if model.training else None", "parameters = None", ("test_objectives.py",)),
    Mutation("mixout: probability fixed at 0.5", "objectives/adversarial.py",
             "p = self.args.mixout_probability", "p = 0.5", ("test_objectives.py",)),
    Mutation("ascc: the search minimises its objective", "attacks/ascc.py",
             "loss = -attack + self.sparsity_weight * sparsity", "loss = attack + self.sparsity_weight * sparsity",
             ("test_objectives.py",)),
    Mutation("genetic: crossover returns its first parent", "attacks/genetic.py",
             "positions = sorted(first.keys() | second.keys())", "return first", ("test_attacks.py",)),
    Mutation("paired: examples held by the method counted without the baseline", "evaluation/paired.py",
             "only_method += sum(held_a[i] and not held_b[i] for i in shared)",
             "only_method += sum(held_a[i] for i in shared)", ("test_paired.py", "test_report.py", "test_bench.py")),
    Mutation("paired: one-sided McNemar p-value", "evaluation/paired.py",
             "return min(1.0, 2 * tail)", "return min(1.0, tail)", ("test_paired.py", "test_report.py")),
    Mutation("paired: differences taken baseline - method", "evaluation/paired.py",
             "values = [a[name] - b[name] for a, b in pairs", "values = [b[name] - a[name] for a, b in pairs",
             ("test_paired.py", "test_report.py")),
    Mutation("attack resume: every example attacked again", "evaluation/robustness.py",
             "todo = [i for i in indices if i not in done][rank::world]", "todo = list(indices)[rank::world]",
             ("test_attacks.py", "test_attack_cli.py")),
    Mutation("engine: an input another example asked for is free", "attacks/engine.py",
             "if key not in run.asked:", "if key not in run.asked and self.model.cached(key) is None:",
             ("test_attacks.py",)),
    Mutation("engine: punctuation counted as words", "attacks/engine.py",
             "        num_words = count_words(words)\n", "        num_words = len(words)\n", ("test_attacks.py",)),
    Mutation("greedy search: only the first substitute of each visited word is tried", "attacks/engine.py",
             "        probabilities = yield candidates\n        p = target.true_probability(probabilities)",
             "        probabilities = yield candidates[:1]\n        candidates = candidates[:1]\n"
             "        p = target.true_probability(probabilities)", ("test_attacks.py",)),
    Mutation("genetic: the original word is not a candidate", "attacks/genetic.py",
             "candidates = [kept, *(kept | {i: word} for _, word in admitted)]",
             "candidates = [member | {i: word} for _, word in admitted]", ("test_attacks.py",)),
    Mutation("constraints: context constraints ignored", "attacks/target.py",
             "kept = [s for s, ok in zip(kept, constraint.admits(self, reference, kept)) if ok]", "kept = kept",
             ("test_constraints.py",)),
    Mutation("textfooler: without its own checks", "attacks/textfooler.py",
             "constraints = (PartOfSpeechMatch(), SentenceSimilarity())", "constraints = ()", ("test_constraints.py",)),
    Mutation("part of speech: the substitute tagged in the original text, not the current one", "attacks/constraints.py",
             "changed = [self._window_words(target, reference | {i: word}, i)",
             "changed = [self._window_words(target, {i: word}, i)", ("test_constraints.py",)),
    Mutation("engine: the budget per word ignored", "attacks/engine.py",
             "budgets.append(max(1, math.floor(self.query_budget_per_word", "budgets.append(max(1, math.floor(1000",
             ("test_attacks.py",)),
    Mutation("protocol: short texts attacked too", "evaluation/protocols.py",
             "return count_words(split_words(attacked)) >= self.min_words", "return True",
             ("test_attack_cli.py::test_textdefender_protocol_limits_hold_for_every_example",)),
    Mutation("attack resume: a last line cut short is kept", "evaluation/robustness.py",
             'if data and not data.endswith(b"\\n"):', "if False:",
             ("test_attack_cli.py::test_an_attack_killed_with_sigkill_resumes_to_the_uninterrupted_result",)),
    Mutation("labels: a checkpoint's label order not checked", "models.py",
             "if allow_mismatch or saved == list(label_names)", "if True or saved == list(label_names)",
             ("test_attack_cli.py::test_a_label_order_other_than_the_models_is_refused",)),
    Mutation("wilson: the interval centred on the raw proportion", "statistics.py",
             "centre = (p + z * z / (2 * n)) / (1 + z * z / n)", "centre = p", ("test_intervals.py",)),
    Mutation("newcombe: the correlation of paired outcomes ignored", "statistics.py",
             "phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0", "phi = 0.0",
             ("test_intervals.py",)),
    Mutation("training: RIFT's heads' gradients not averaged over processes", "training/hf_trainer.py",
             "if self.accelerator.num_processes > 1 and self.accelerator.sync_gradients:", "if False:",
             ("test_distributed.py::test_two_process_training_equals_one_process_with_accumulated_gradients",)),
    Mutation("sampler: class-balanced batches not balanced", "data/sampling.py",
             "batch = [i for members in shuffled for i in members[b * self.per_class : (b + 1) * self.per_class]]",
             "batch = [i for members in shuffled[:1] for i in members[b * self.per_class * 2 : (b + 1) * self.per_class * 2]]",
             ("test_training.py", "test_objectives.py")),
    Mutation("infonce: softmax over the teachers of each student row", "objectives/rift.py",
             "return -similarity.log_softmax(0).diagonal().mean()", "return -similarity.log_softmax(1).diagonal().mean()",
             ("test_objectives.py::test_info_nce_matches_a_hand_computed_value",)),
    Mutation("adversary: clean reference with dropout on", "adversaries/base.py",
             "    with eval_mode(model):\n        return classify(", "    if True:\n        return classify(",
             ("test_adversaries.py",)),
    Mutation("adversary: discrete search ignores the gradient ranking", "adversaries/discrete.py",
             "key=lambda pair: -estimate.get(pair, float(\"-inf\"))", "key=lambda pair: 0",
             ("test_adversaries.py::test_first_order_estimates_are_hotflips_term_and_the_search_scores_the_best_first",)),
    Mutation("adversary: ascc said to hold every substitute", "adversaries/ascc.py",
             "return single_token_id(self.tokenizer, prefix, substitute) in slot[1:]", "return len(slot) > 0",
             ("test_adversaries.py",)),
    Mutation("rift: the teacher's feature is always the pooler's", "objectives/rift.py",
             "classify(self.teacher, return_pooled=True, feature=self.feature, **inputs)",
             "classify(self.teacher, return_pooled=True, **inputs)",
             ("test_objectives.py::test_rift_reads_the_chosen_feature_of_student_and_teacher",)),
    Mutation("sampler: --class-balanced ignored", "data/sampling.py",
             "if class_balanced if class_balanced is not None else objective_default:", "if objective_default:",
             ("test_adversaries.py",)),
    Mutation("surface: a change marked in the surface whatever the adversary", "evaluation/surface.py",
             "in_training_surface=adversary.can_produce(alignment, c.position, c.new)", "in_training_surface=True",
             ("test_adversaries.py",)),
    Mutation("training: RIFT's projection heads left out of the optimiser", "training/hf_trainer.py",
             "if heads and not any(id(p) in known for p in heads):", "if False:",
             ("test_guards_training.py::test_rift_projection_heads_are_trained_by_the_optimiser",)),
    Mutation("training: test accuracy of the last model, not of the best dev checkpoint", "training/run.py",
             'metrics["test_accuracy"] = accuracy(best,', 'metrics["test_accuracy"] = accuracy(self.model,',
             ("test_guards_training.py::test_test_accuracy_is_that_of_the_best_dev_checkpoint_even_when_it_is_not_the_last",)),
    Mutation("sampler: class-balanced order the same in every epoch", "data/sampling.py",
             "        generator = self._generator()\n", "        generator = torch.Generator().manual_seed(self.seed)\n",
             ("test_guards_training.py::test_class_balanced_sampler_reshuffles_per_epoch_and_repeats_an_epoch_exactly",)),
    Mutation("training: the sampler never told the epoch", "training/hf_trainer.py",
             "self.trainer._sampler.start_epoch(int(state.epoch or 0))", "self.trainer._sampler.start_epoch(0)",
             ("test_guards_training.py::test_training_sees_a_new_order_each_epoch_and_the_same_orders_with_the_same_seed",)),
    Mutation("random adversary: the same draw at every step", "adversaries/random_substitution.py",
             'rng = random.Random(f"{self.args.seed}:{step}:{index}")', 'rng = random.Random(f"{self.args.seed}:{index}")',
             ("test_guards_training.py::test_random_adversary_draws_afresh_at_each_step_and_the_same_at_the_same_step",)),
    Mutation("training: the context reports step 0 throughout", "training/hf_trainer.py",
             "current_step=lambda: self.state.global_step", "current_step=lambda: 0",
             ("test_guards_training.py::test_the_context_reports_the_optimiser_steps_taken",)),
    Mutation("training: the heads' gradients never cleared", "training/hf_trainer.py",
             "self.trainer.objective.zero_grad(set_to_none=True)", "pass",
             ("test_guards_training.py::test_rift_projection_heads_are_trained_by_the_optimiser",)),
    Mutation("rift: teacher features stored under the wrong examples", "objectives/rift.py",
             "features[[item.index for item in items]] = pooled.float().cpu()",
             "features[[item.index for item in items][::-1]] = pooled.float().cpu()",
             ("test_objectives.py::test_rift_training_keeps_the_teacher_and_saves_a_plain_checkpoint",)),
    Mutation("records: the compressed per-example results not read", "evaluation/robustness.py",
             "    elif compressed(path).exists():", "    elif False:",
             ("test_bench.py::test_a_record_without_weights_is_tabulated_reported_and_continued",)),
    Mutation("seed interval: the normal quantile instead of Student's t", "statistics.py",
             "half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)",
             "half = Z_95 * spread / math.sqrt(n)", ("test_intervals.py",)),
    Mutation("diagnostics: the head's gradient counted as the encoder's", "training/hf_trainer.py",
             "encoder = [p for p in unwrap(model).base_model.parameters() if p.requires_grad]",
             "encoder = [p for p in unwrap(model).parameters() if p.requires_grad]",
             ("test_guards_training.py::test_each_logged_gradient_norm_is_that_of_its_term_alone",)),
    Mutation("diagnostics: the KL part without its weight", "objectives/adversarial.py",
             'parts["kl"] = self.beta * terms["kl"]', 'parts["kl"] = terms["kl"]',
             ("test_guards_training.py::test_each_logged_gradient_norm_is_that_of_its_term_alone",)),
    Mutation("diagnostics: clipping never counted", "training/hf_trainer.py",
             "self._clipped += int(float(norm) > self.args.max_grad_norm)", "self._clipped += 0",
             ("test_guards_training.py::test_a_run_logs_the_diagnostics_every_n_steps",)),
    Mutation("rift: the MI term's default feature is not the head's input", "objectives/rift.py",
             'feature: str = option("pooler",', 'feature: str = option("mean",',
             ("test_objectives.py::test_rift_mi_term_trains_the_heads_and_the_encoder",)),
    Mutation("retention: the layers' token states compared with the fine-tuned model's own", "evaluation/retention.py",
             'f"cka_{name}": linear_cka(found[name], self.pretrained[name]) for name in found if name != "mean"}',
             'f"cka_{name}": linear_cka(found[name], found[name]) for name in found if name != "mean"}',
             ("test_retention.py::test_token_states_are_every_layers_real_tokens_in_the_items_order",)),
    Mutation("resume: an incomplete checkpoint taken for a complete one", "training/run.py",
             'if path.name.rsplit("-", 1)[1].isdigit() and (path / "trainer_state.json").is_file()',
             'if path.name.rsplit("-", 1)[1].isdigit()',
             ("test_training.py::test_resumed_run_equals_uninterrupted_run",)),
    Mutation("files: written in place, not renamed over the target", "files.py",
             "handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f\".{path.name}.\", suffix=\".partial\")",
             "handle, temporary = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), str(path)",
             ("test_files.py",)),
    Mutation("ascc attack: not marked as the training adversary's measure", "attacks/ascc.py",
             "    measures_training_adversary = True\n", "    measures_training_adversary = False\n",
             ("test_bench.py", "test_attack_cli.py")),
    Mutation("registry: a component of one's own not offered by the flags", "arguments.py",
             'def method_names() -> tuple[str, ...]:\n    return names("objective")',
             'def method_names() -> tuple[str, ...]:\n    return names("objective")[:7]',
             ("test_extending.py",)),
    Mutation("rift-clean: the heads read the adversarial features", "objectives/rift.py",
             "    wants_adversarial_pooled = False\n", "    wants_adversarial_pooled = True\n",
             ("test_guards_training.py::test_rift_heads_read_the_adversarial_features_and_rift_clean_the_clean_ones",)),
    Mutation("retention: the fine-tuned model compared with itself", "training/run.py",
             "self._retention_probe = RetentionProbe(pretrained, items,",
             "self._retention_probe = RetentionProbe(self.model, items,",
             ("test_guards_training.py::test_retention_compares_the_fine_tuned_model_with_the_pretrained_one",)),
    Mutation("ascc search: one Adam step fewer", "attacks/ascc.py",
             "for _ in range(self.steps):", "for _ in range(self.steps - 1):", (ASCC_REPLAY,)),
    Mutation("ascc search: the sparsity term's sign flipped", "attacks/ascc.py",
             "loss = -attack + self.sparsity_weight * sparsity", "loss = -attack - self.sparsity_weight * sparsity",
             (ASCC_REPLAY,)),
    Mutation("ascc search: entropy averaged over every position, not those with substitutes", "attacks/ascc.py",
             "sparsity = ((entropy * substitutable).sum(-1) / positions).sum() / REFERENCE_BATCH",
             "sparsity = entropy.mean(-1).sum() / REFERENCE_BATCH", (ASCC_REPLAY,)),
    Mutation("genetic: parents drawn by p(y), not 1 - p(y)", "attacks/genetic.py",
             "fitness = (1 - target.true_probability(probabilities)).tolist()",
             "fitness = target.true_probability(probabilities).tolist()",
             ("test_guards_attacks.py::test_genetic_draws_parents_with_weights_one_minus_their_true_label_probability",)),
    Mutation("pwws: saliency probes delete the word instead of putting the unknown token", "attacks/pwws.py",
             'unknown = self.model.tokenizer.unk_token or ""', 'unknown = ""',
             ("test_guards_attacks.py::test_pwws_saliency_probes_replace_one_word_by_the_unknown_token",)),
    Mutation("textfooler: words visited in ascending importance", "attacks/textfooler.py",
             "key=lambda k: -drops[k]", "key=lambda k: drops[k]", (TEXTFOOLER_ORDER,)),
    Mutation("textfooler: words visited in text order", "attacks/textfooler.py",
             "order = [positions[k] for k in sorted(range(len(positions)), key=lambda k: -drops[k])]",
             "order = positions", (TEXTFOOLER_ORDER,)),
    Mutation("engine: a misclassified example attacked, not skipped", "attacks/engine.py",
             "if probabilities[0].argmax() != run.example.label:", "if False:", (SKIPPED,)),
    Mutation("ascc attack: a misclassified example attacked, not skipped", "attacks/ascc.py",
             "skipped = clean_prediction != example.label", "skipped = False", (SKIPPED,)),
    Mutation("ascc attack: a misclassified example searched all the same", "attacks/ascc.py",
             "correct = (clean.argmax(-1) == batch[\"labels\"]).nonzero().flatten()",
             "correct = torch.arange(len(rows), device=device)", (SKIPPED,)),
    Mutation("paired: a skipped example counted as held", "evaluation/paired.py",
             'return {index: result.status == "failed" for', 'return {index: result.status != "succeeded" for',
             ("test_guards_attacks.py::test_a_paired_comparison_does_not_count_a_skipped_example_as_held",)),
]


def check(mutation: Mutation, scratch: Path, environment: dict[str, str]) -> str | None:
    """The first test that fails on the mutated copy, or None when all of them pass."""
    target = scratch / "src" / "rift" / mutation.file
    original = (ROOT / "src" / "rift" / mutation.file).read_text()
    if original.count(mutation.old) != 1:
        raise SystemExit(f"{mutation.name}: the text to mutate is not found exactly once in {mutation.file}")
    target.write_text(original.replace(mutation.old, mutation.new))
    try:
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                   *(f"tests/{test}" for test in mutation.tests)]
        result = subprocess.run(command, cwd=scratch, env=environment, capture_output=True, text=True)
    finally:
        target.write_text(original)
    if result.returncode == 0:
        return None
    lines = result.stdout.splitlines()
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    why = [line[1:].strip() for line in lines if line.startswith("E ")]
    return " | ".join([*failed[:1], *why[:2]]) or lines[-1]


def main(selection: list[str]) -> int:
    from rift.data import resolve_data_dir

    chosen = [m for m in MUTATIONS if not selection or any(s in m.name for s in selection)]
    with tempfile.TemporaryDirectory(prefix="rift-mutations-") as folder:
        scratch = Path(folder)
        for part in ("src", "tests", "pyproject.toml"):
            copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy2
            copy(ROOT / part, scratch / part)
        # the copy's package shadows the editable install; the data stays where it is
        environment = os.environ | {"PYTHONPATH": str(scratch / "src"), "RIFT_DATA_DIR": str(resolve_data_dir())}
        missed = []
        for mutation in chosen:
            started = time.perf_counter()
            caught = check(mutation, scratch, environment)
            print(f"{'caught' if caught else 'MISSED'}  {mutation.name}  ({time.perf_counter() - started:.0f} s)"
                  + (f"\n        {caught}" if caught else ""), flush=True)
            if not caught:
                missed.append(mutation.name)
    print(f"{len(chosen) - len(missed)} of {len(chosen)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
