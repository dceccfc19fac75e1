"""``rift attack`` on one classifier: its settings checked against the folder it writes to (a folder holds the
results of one setting), a published protocol's settings applied, every requested attack run over the same seeded
sample (``rift.evaluation.robustness``), and ``results.json`` written after each."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
import yaml

from rift.accelerator import make_accelerator, pick_mixed_precision
from rift.arguments import AttackArguments, EvalArguments
from rift.attacks.registry import build_attack
from rift.attacks.results import text_attacks, worst_case
from rift.config import changed_options
from rift.data import resolve_data_dir
from rift.errors import RiftError
from rift.evaluation.protocols import get_protocol
from rift.evaluation.robustness import attack_sample, examples_file, read_results, run_attack
from rift.evaluation.surface import mark_training_surface, training_adversary
from rift.files import write_atomic
from rift.inputs import check_inputs, fingerprints, record_inputs, recording_reads, weights_read_before
from rift.models import check_label_names, load_classifier, load_tokenizer
from rift.prediction import AveragedPredictor, MaskVote, SubstitutionVote, VotePredictor, recorded_prediction
from rift.registry import load
from rift.run_folder import ATTACK_CONFIG_FILE, ATTACK_RESULTS_FILE
from rift.substitutions import build_substitution_source
from rift.text.words import split_words


def scored_classifier(args: EvalArguments | AttackArguments, task):
    """The classifier that ``rift eval`` or ``rift attack`` scores, and its tokenizer, refused when its labels are
    not the task's."""
    model = load_classifier(args.model, trust_remote_code=args.trust_remote_code,
                            trained_head=not args.allow_untrained_head)
    if model.config.num_labels != task.num_labels:
        raise RiftError(f"model {args.model} predicts {model.config.num_labels} labels, task {task.name} has {task.num_labels}")
    check_label_names(model, args.model, task.label_names, args.allow_label_mismatch)
    return model, load_tokenizer(args.model, args.trust_remote_code)


# options that may change between an interrupted attack run and its continuation; num_examples too, since every
# record is keyed by its example's index and each summary covers exactly its own sample (rift bench runs genetic
# on fewer examples than the other attacks, into the same folder); output_dir, since a folder may be moved or copied
ATTACK_RESUMABLE_CHANGES = {"attack", "batch_size", "num_threads", "config", "num_examples", "output_dir",
                            "allow_changed_data"}


def substitutable(source, examples) -> int:
    """How many of ``examples`` have a word of their attacked text (a pair's hypothesis) that ``source`` offers a
    substitute for: the examples an attack can change at all."""
    count = 0
    for example in examples:
        words = [word.text for word in split_words(example.text if example.text_pair is None else example.text_pair)]
        count += any(source.substitutes(words, i) for i in range(len(words)))
    return count


def check_attack_output(args: AttackArguments, output_dir: Path) -> None:
    """Refuse to mix results of different settings in one folder; save the settings beside the results."""
    saved_path = output_dir / ATTACK_CONFIG_FILE
    saved = (yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}) if saved_path.exists() else {}
    # an attack's own options that the folder's settings lack: that attack has not run here, nothing to mix with
    own = {f.name for f in dataclasses.fields(AttackArguments)}
    not_run = {f.name for f in dataclasses.fields(args)} - own - set(saved)
    changed = changed_options(args, saved_path, ATTACK_RESUMABLE_CHANGES | not_run)
    if changed == ["model"] and weights_read_before(args.model, output_dir):
        changed = []  # the same weights at another path: the attacks go on
    if saved_path.exists() and changed:
        raise RiftError(f"{output_dir} holds results of other settings ({', '.join(changed)}); choose another --output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    # the settings of every attack run here: the earlier attacks' options are kept beside this one's
    write_atomic(saved_path, yaml.safe_dump(saved | dataclasses.asdict(args), sort_keys=False))


def apply_protocol(args: AttackArguments, task: str) -> AttackArguments:
    """``args`` with the settings of its ``--protocol``; a conflicting explicit setting is an error, not overridden."""
    protocol = get_protocol(args.protocol)
    flag = f"--protocol {protocol.name}"
    measures = [name for name in args.attack if load("attack", name).measures_training_adversary]
    if measures:
        raise RiftError(f"{flag} is for the discrete attacks; {', '.join(measures)}, the training adversary's "
                        "measure, is not part of it")
    required = {"max_changed_share": protocol.max_changed_share, "max_substitutes": protocol.max_substitutes,
                "max_length": protocol.max_length_for(task)}
    defaults = {f.name: f.default for f in dataclasses.fields(AttackArguments)}
    for name, value in required.items():
        given = getattr(args, name)
        if given != defaults[name] and given != value:
            raise RiftError(f"{flag} sets --{name.replace('_', '-')} {value}; drop --{name.replace('_', '-')} {given}")
    if args.query_budget is not None:
        raise RiftError(f"{flag} sets its own query budget ({protocol.query_budget_per_word:g} per word); "
                        "drop --query-budget")
    if args.lm_constraint:
        raise RiftError(f"{flag} has no language-model constraint; drop --lm-constraint")
    if args.num_examples is not None and args.num_examples > protocol.max_examples:
        raise RiftError(f"{flag} attacks at most {protocol.max_examples} examples, got --num-examples {args.num_examples}")
    return dataclasses.replace(args, **required, num_examples=args.num_examples or protocol.max_examples)


def build_named_attack(name: str, model, tokenizer, source, args: AttackArguments,
                       predictor: AveragedPredictor | VotePredictor | None = None):
    """The registered attack ``name`` with the settings ``args`` gives it, under ``args.protocol`` if any, through
    the model's averaged prediction when it predicts so."""
    options = load("attack", name).options_from(args)
    if args.protocol:
        protocol = get_protocol(args.protocol)
        options = load("attack", name).with_protocol(options, protocol.constraints(), protocol.query_budget_per_word)
    if predictor is not None:
        if load("attack", name).measures_training_adversary:
            raise RiftError(f"the {name} attack scores one forward pass of the model, but {args.model} predicts by "
                            f"averaging {predictor.samples} passes ({predictor.prediction.aggregation}); attack it "
                            "with a word-substitution attack")
        options["predictor"] = predictor
    return build_attack(name, model, tokenizer, source, batch_size=args.batch_size, max_length=args.max_length,
                        **options)


def attack_synonyms(name: str, args: AttackArguments) -> str:
    """The substitution source the attack ``name`` runs on."""
    return load("attack", name).synonyms or args.synonyms


def averaged_predictor(model, tokenizer, args: EvalArguments | AttackArguments
                       ) -> AveragedPredictor | VotePredictor | None:
    """The model's averaged prediction or vote, if its checkpoint records one (``rift.prediction``), over the
    substitution source it was trained with."""
    prediction = recorded_prediction(model)
    if prediction is None:
        return None
    if isinstance(prediction, MaskVote):
        return VotePredictor(model, tokenizer, prediction, args.max_length, batch_size=args.batch_size)
    source = build_substitution_source(prediction.synonyms, resolve_data_dir(args.data_dir),
                                       max_substitutes=prediction.max_substitutes)
    if isinstance(prediction, SubstitutionVote):
        return VotePredictor(model, tokenizer, prediction, args.max_length, source, batch_size=args.batch_size)
    return AveragedPredictor(model, tokenizer, prediction, source, args.max_length)


def run_attacks(args: AttackArguments) -> tuple[dict, AttackArguments]:
    """Run every attack of ``args``; the content of results.json (on every process) and the settings in force
    (``args`` with its protocol's settings)."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    accelerator = make_accelerator(mixed_precision=pick_mixed_precision(args.mixed_precision))
    log = (lambda message: print(message, file=sys.stderr)) if accelerator.is_main_process else (lambda message: None)
    with recording_reads() as read:  # the data, synonym tables and weights the attacks read
        task = args.load_task(log=log, scored_split=args.split)
        protocol = get_protocol(args.protocol) if args.protocol else None
        if protocol:
            args = apply_protocol(args, task.name)
        model, tokenizer = scored_classifier(args, task)
        model.to(accelerator.device).eval()
        predictor = averaged_predictor(model, tokenizer, args)
        # each attack's substitutes: the run's --synonyms, or the source the attack is defined with (pwws-wordnet)
        sources = {name: build_substitution_source(name, resolve_data_dir(args.data_dir),
                                                   exclude_stopwords=args.exclude_stopwords,
                                                   max_substitutes=args.max_substitutes)
                   for name in dict.fromkeys(attack_synonyms(name, args) for name in args.attack)}
    inputs = fingerprints(read)
    examples = task.splits[args.split]
    if not examples:
        raise RiftError(f"the {args.split} split of {task.name} is empty")
    # a protocol attacks only the texts it admits: the sample is drawn from those
    eligible = (lambda i: protocol.eligible(examples[i])) if protocol else (lambda i: True)
    indices = attack_sample(len(examples), args.num_examples,
                            args.seed if args.sample_seed is None else args.sample_seed, eligible)
    if not indices:
        raise RiftError(f"no example of the {args.split} split of {task.name} is long enough for --protocol {args.protocol}")
    with_substitutes = {name: substitutable(source, [examples[i] for i in indices]) for name, source in sources.items()}
    for name, count in with_substitutes.items():
        if not count:
            raise RiftError(f"the {name} substitutions offer no substitute for any word of the {len(indices)} "
                            "sampled examples: every attack would leave them as they are and report robust accuracy "
                            "equal to clean accuracy; check the substitution table")
    output_dir = Path(args.output_dir)
    # records kept by example index mean other texts, or another model's answers, once an input has changed
    check_inputs(output_dir, inputs, args.allow_changed_data, "the attacks", log=log,
                 write=accelerator.is_main_process)
    if accelerator.is_main_process:
        check_attack_output(args, output_dir)
        record_inputs(output_dir, inputs)
    accelerator.wait_for_everyone()

    results_path = output_dir / ATTACK_RESULTS_FILE
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.update(model=args.model, task=task.name, split=args.split, seed=args.seed, synonyms=args.synonyms,
                   mixed_precision=accelerator.mixed_precision,
                   protocol=protocol.settings(task.name) if protocol else None,
                   untrained_head=model.rift_untrained_head or None,
                   **({"examples_with_substitutes": with_substitutes[args.synonyms]}
                      if args.synonyms in with_substitutes else {}),
                   prediction=None if predictor is None else dataclasses.asdict(predictor.prediction))
    results.setdefault("attacks", {})
    # which changes the model's own training adversary could have made (a model rift trained against one)
    adversary = training_adversary(args.model, tokenizer, args.data_dir)
    mark = None if adversary is None else lambda result: mark_training_surface(result, adversary, args.max_length)
    results["training_adversary"] = None if adversary is None else adversary.name
    for name in args.attack:
        attack = build_named_attack(name, model, tokenizer, sources[attack_synonyms(name, args)], args, predictor)
        with accelerator.autocast():
            summary = run_attack(attack, examples, indices, output_dir, accelerator, mark=mark)
        synonyms = attack_synonyms(name, args)
        results["attacks"][name] = summary | {"synonyms": synonyms, "examples_with_substitutes": with_substitutes[synonyms]}
        if accelerator.is_main_process:
            write_atomic(results_path, json.dumps(results, indent=2))
    # the worst case over every word-substitution attack this folder holds (the training adversary's own measure,
    # ascc, is no attack on texts and stays out)
    on_texts = text_attacks(results["attacks"])
    results["worst_case"] = worst_case({name: read_results(examples_file(output_dir, name)) for name in on_texts}
                                       if len(on_texts) > 1 else {})
    if accelerator.is_main_process:
        write_atomic(results_path, json.dumps(results, indent=2))
    return results, args
