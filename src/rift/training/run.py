"""``rift train``: a run folder on ``rift.RobustTrainer``, so that one training loop, ``transformers.Trainer``'s,
serves the command line, the API and Hugging Face scripts alike.

What a run writes to ``output_dir``:

- the best model on the dev split as a plain Hugging Face checkpoint (``config.json``, ``model.safetensors``,
  tokenizer files), loadable by ``transformers.pipeline`` without rift; the test split never chooses anything;
- ``rift_config.yaml`` (the full configuration), ``metrics.json``, ``train_log.jsonl``, TensorBoard ``logs/``;
  every dev evaluation also measures how much of the pre-trained features the model keeps (``dev_cka``,
  ``dev_mi_nce``: ``rift.evaluation.retention``), and ``metrics.json`` holds the best checkpoint's ``retention``;
- ``README.md``, the model card, which ``rift.train`` (``rift.api``) writes when the run returns and ``rift attack``
  extends with its results;
- ``resume/checkpoint-N``: the Trainer's checkpoint (model, optimiser, schedule, random states, progress) with the
  objective's state and the run's own (best dev accuracy, evaluations, training time), for ``--resume``; removed
  when the run finishes, unless ``--keep-resume-state``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
import transformers
from accelerate.utils import set_seed
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from rift.accelerator import has_accelerator, pick_mixed_precision
from rift.arguments import TrainingArguments
from rift.config import changed_options, save_config
from rift.data import TaskData
from rift.data.batching import encode_examples
from rift.data.sampling import training_batch_sampler
from rift.errors import RiftError
from rift.evaluation.accuracy import accuracy, averaged_accuracy
from rift.evaluation.attack_run import averaged_predictor
from rift.evaluation.retention import RetentionProbe
from rift.evaluation.robustness import sample_indices
from rift.files import is_main_process, write_atomic, writer_tag
from rift.models import load_classifier, load_tokenizer, unwrap
from rift.objectives import Objective, build_objective
from rift.inputs import check_inputs, fingerprints, record_inputs, recording_reads
from rift.run_folder import CONFIG_FILE, INPUTS_FILE, LOG_FILE, LOGS_DIR, METRICS_FILE, RESUME_DIR
from rift.training.hf_trainer import RobustTrainer, resume_piece

RUN_STATE_FILE = "rift_run_state.json"  # inside each checkpoint
# options that may differ between an interrupted run and its resumption: none changes what is trained (a run
# folder may also have been moved)
RESUMABLE_CHANGES = {"resume", "num_threads", "config", "eval_batch_size", "retention_examples", "save_steps",
                     "output_dir", "keep_resume_state", "diagnostics_steps", "logging_steps", "allow_changed_data"}
# the dev examples of the retention measurement are the same for every seed of a study
RETENTION_SEED = 0


def changed_training_options(args: TrainingArguments, saved_config: Path) -> list[str]:
    """The options of ``args`` that differ from the run saved in ``saved_config``, besides those that may change and
    those the method never reads: ``args`` holds only its components' options, and a method without an adversary
    does not depend on ``--adversary`` (a baseline need not be retrained when only the adversary changes)."""
    pointless = type(args).pointless_options(dataclasses.asdict(args))
    return changed_options(args, saved_config, RESUMABLE_CHANGES | pointless)


def hf_arguments(args: TrainingArguments, batches_per_epoch: int, has_dev: bool) -> transformers.TrainingArguments:
    """The ``transformers.TrainingArguments`` of a ``rift train`` run: checkpoints in ``OUTPUT_DIR/resume``, one
    kept; dev evaluation (if there is a dev split) after every epoch or every ``eval_steps``; the warm-up a share of
    all steps, rounded."""
    # batches are dealt to the processes in turn (torchrun and accelerate launch set WORLD_SIZE)
    per_process = math.ceil(batches_per_epoch / int(os.environ.get("WORLD_SIZE", "1")))
    steps = math.ceil(per_process / args.gradient_accumulation_steps) * args.epochs
    precision = pick_mixed_precision(args.mixed_precision)
    every = {"strategy": "steps", "steps": args.eval_steps} if args.eval_steps else {"strategy": "epoch", "steps": None}
    if not has_dev:
        every = {"strategy": "no", "steps": None}
    save_steps = args.save_steps or args.eval_steps
    return transformers.TrainingArguments(
        output_dir=str(Path(args.output_dir) / RESUME_DIR),
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.eval_batch_size,
        num_train_epochs=args.epochs, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        warmup_steps=round(args.warmup_ratio * steps), lr_scheduler_type="linear", max_grad_norm=args.max_grad_norm,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not has_accelerator(),
        eval_strategy=every["strategy"], eval_steps=every["steps"],
        save_strategy="steps" if save_steps else "epoch", save_steps=save_steps or None, save_total_limit=1,
        logging_strategy="steps" if args.logging_steps else "no", logging_steps=args.logging_steps or 1,
        report_to="none", seed=args.seed, remove_unused_columns=False,
    )


class RunTrainer(RobustTrainer):
    """``RobustTrainer`` keeping a ``rift train`` run folder: the best dev checkpoint, retention at every
    evaluation, ``train_log.jsonl``, TensorBoard logs and ``metrics.json``."""

    def __init__(self, args: TrainingArguments, task: TaskData, model, tokenizer, objective: Objective,
                 log=print, callbacks=()):
        self.run_args, self.task, self.output_dir = args, task, Path(args.output_dir)
        if not task.splits["train"]:
            raise RiftError("the training split is empty")
        self.encoded = {split: encode_examples(tokenizer, examples, args.max_length)
                        for split, examples in task.splits.items() if split != "train"}
        sampler = training_batch_sampler([example.label for example in task.splits["train"]], args.batch_size,
                                         args.seed, args.class_balanced, objective.class_balanced)
        self._run_log = log
        self.run_state = {"best_dev_accuracy": None, "best_step": None, "evaluations": [], "train_seconds": 0.0}
        self._retention_probe: RetentionProbe | None = None
        self.resumed_from: str | None = None
        self._random_states_loaded_from: str | None = None
        self._clock = time.perf_counter()
        super().__init__(model=model, args=hf_arguments(args, len(sampler), bool(self.encoded.get("dev"))),
                         train_dataset=task.splits["train"], eval_dataset=self.encoded.get("dev") or None,
                         processing_class=tokenizer, method=args.method, objective=objective, robust_args=args)
        self.encoded["train"] = self.train_items
        for printer in (ProgressCallback, PrinterCallback):  # whichever the Trainer chose: the run prints its own
            self.remove_callback(printer)
        self.add_callback(_RunProgress())
        self.add_callback(_RunLog(self.output_dir / LOG_FILE))
        self.add_callback(_EvaluationAfterCheckpoint(self))
        tensorboard = TensorBoardCallback()
        tensorboard.logging_dir = str(self.output_dir / LOGS_DIR)
        self.add_callback(tensorboard)
        for callback in callbacks:
            self.add_callback(callback)

    @property
    def pad_token_id(self) -> int:
        return self._pad

    def _message(self, text: str) -> None:
        if self.is_world_process_zero():
            self._run_log(text)

    # ------------------------------------------------------------------------------------------ evaluation
    def retention_probe(self) -> RetentionProbe | None:
        """The pre-trained model's features on a seeded dev subset, computed at the first call (on every process
        alike); None when ``retention_examples`` is 0 or the dev split is too small."""
        dev = self.encoded.get("dev") or []
        if self._retention_probe is None and self.run_args.retention_examples and len(dev) >= 4:
            items = [dev[i] for i in sample_indices(len(dev), self.run_args.retention_examples, RETENTION_SEED)]
            with torch.random.fork_rng(devices=[]):  # the new head's initialisation must not shift training's draws
                pretrained = load_classifier(self.run_args.model, self.task.label_names,
                                             self.run_args.trust_remote_code)
            pretrained.to(self.args.device)
            self._retention_probe = RetentionProbe(pretrained, items, self.pad_token_id, self.args.eval_batch_size)
        return self._retention_probe

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Dev accuracy and retention; the model is saved to the run folder when its dev accuracy is the best yet."""
        if eval_dataset is not None:  # another dataset, asked for by hand: the Trainer's own evaluation
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        model = self.model
        metrics = {"dev_accuracy": accuracy(model, self.encoded["dev"], self.pad_token_id, self.args.eval_batch_size,
                                            self.accelerator)}
        probe = self.retention_probe()
        if probe is not None:
            metrics |= {f"dev_{name}": value for name, value in probe(model).items()}
        step = self.state.global_step
        self.run_state["evaluations"].append({"step": step, "epoch": math.floor(self.state.epoch or 0)} | metrics)
        self.log({f"{metric_key_prefix}_{name}": value for name, value in metrics.items()})
        self._message(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        best = self.run_state["best_dev_accuracy"]
        if best is None or metrics["dev_accuracy"] > best:
            self.run_state["best_dev_accuracy"], self.run_state["best_step"] = metrics["dev_accuracy"], step
            self.save_run_model()
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics=metrics)
        return {f"{metric_key_prefix}_{name}": value for name, value in metrics.items()}

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_run_model(self) -> None:
        """The model as a plain Hugging Face checkpoint in the run folder (safetensors, config, tokenizer), written
        to a staging folder and moved into place file by file, so that a kill never leaves a file cut short."""
        self.accelerator.wait_for_everyone()
        if self.is_world_process_zero():
            staging = self.output_dir / f".model.{writer_tag()}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            unwrap(self.model).save_pretrained(staging, safe_serialization=True)
            self.processing_class.save_pretrained(staging)
            for path in sorted(staging.iterdir()):
                os.replace(path, self.output_dir / path.name)
            staging.rmdir()
        self.accelerator.wait_for_everyone()

    def _checkpoint_extras(self, folder: Path) -> None:
        self.run_state["train_seconds"] += time.perf_counter() - self._clock
        self._clock = time.perf_counter()
        write_atomic(folder / RUN_STATE_FILE, json.dumps(self.run_state, indent=1))

    def check_resume_state(self, checkpoint: Path) -> None:
        super().check_resume_state(checkpoint)
        path = checkpoint / RUN_STATE_FILE
        resume_piece(path, lambda: json.loads(path.read_text(encoding="utf-8")))

    def resume_run_state(self, checkpoint: Path) -> None:
        self.run_state = json.loads((checkpoint / RUN_STATE_FILE).read_text(encoding="utf-8"))
        # what the interrupted run logged after its last checkpoint is logged again by the resumed run: later steps,
        # an evaluation of the checkpoint's own step that its state lacks (``_EvaluationAfterCheckpoint``), and a
        # line a kill cut short
        log_file = self.output_dir / LOG_FILE
        if log_file.exists() and self.is_world_process_zero():
            step = self.run_state_step(checkpoint)
            evaluated = {evaluation["step"] for evaluation in self.run_state["evaluations"]}
            rows, lines = [], log_file.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    row = json.loads(line)
                except ValueError:
                    if number == len(lines):  # the line a kill cut short
                        continue
                    raise RiftError(f"{log_file}: line {number} is damaged; it cannot be resumed") from None
                if row["step"] < step or row["step"] == step and (
                        step in evaluated or not any(name.startswith("eval/") for name in row)):
                    rows.append(line)
            write_atomic(log_file, "".join(row + "\n" for row in rows))

    def train(self, resume_from_checkpoint: str | None = None, **kwargs):
        self.resumed_from = resume_from_checkpoint
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def load_random_states_once(self, checkpoint: str) -> None:
        """The checkpoint's random states, loaded now and not again when the Trainer starts the epoch."""
        self._load_rng_state(checkpoint)
        self._random_states_loaded_from = checkpoint

    def _load_rng_state(self, checkpoint):
        if checkpoint is None or checkpoint != self._random_states_loaded_from:
            super()._load_rng_state(checkpoint)

    @staticmethod
    def run_state_step(checkpoint: Path) -> int:
        return int(checkpoint.name.rsplit("-", 1)[1])

    def finish(self) -> dict:
        """The best checkpoint's metrics (test accuracy included) and ``metrics.json``."""
        self.run_state["train_seconds"] += time.perf_counter() - self._clock
        if self.run_state["best_step"] is None:  # no dev split: the last model is the result
            self.save_run_model()
        self.accelerator.wait_for_everyone()
        args, state = self.run_args, self.run_state
        best = load_classifier(str(self.output_dir), trust_remote_code=args.trust_remote_code).to(self.args.device)
        metrics = {
            "task": self.task.name, "method": args.method, "model": args.model, "seed": args.seed,
            "num_train_examples": len(self.encoded["train"]), "epochs": args.epochs,
            "steps": self.state.global_step, "best_step": state["best_step"],
            "dev_accuracy": state["best_dev_accuracy"], "train_seconds": round(state["train_seconds"], 2),
        }
        adversary = getattr(self.objective, "adversary", None)
        if adversary is not None:
            metrics["adversary"] = {"name": adversary.name, "coverage": adversary.coverage}
        best_evaluation = next((e for e in state["evaluations"] if e["step"] == state["best_step"]), {})
        if "dev_cka" in best_evaluation:
            metrics["retention"] = {name.removeprefix("dev_"): value for name, value in best_evaluation.items()
                                    if name.startswith(("dev_cka", "dev_mi_nce"))}
        if self.encoded.get("test"):
            single = accuracy(best, self.encoded["test"], self.pad_token_id, self.args.eval_batch_size, self.accelerator)
            # a model that predicts by averaging passes (dne) is scored as it predicts; its single pass is kept
            predictor = averaged_predictor(best, self.processing_class, args)
            metrics["test_accuracy"] = single if predictor is None else averaged_accuracy(
                predictor, self.task.splits["test"], self.args.eval_batch_size)
            if predictor is not None:
                metrics["test_accuracy_single_pass"] = single
        metrics["evaluations"] = state["evaluations"]
        if self.is_world_process_zero():
            write_atomic(self.output_dir / METRICS_FILE, json.dumps(metrics, indent=2))
            drop_resume_state(args)
        return metrics


class _RunLog(transformers.TrainerCallback):
    """Appends every log as ``{"step", "train/TERM" | "eval/METRIC": value}`` to ``train_log.jsonl``."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {}
        for name, value in logs.items():
            if name.startswith("eval_"):
                row[f"eval/{name.removeprefix('eval_')}"] = value
            elif name in ("loss", "learning_rate", "grad_norm") or name.startswith("rift/"):
                row[f"train/{name.removeprefix('rift/')}"] = value
        if row:
            with open(self.path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps({"step": state.global_step, **row}) + "\n")


class _EvaluationAfterCheckpoint(transformers.TrainerCallback):
    """The evaluation at an epoch's end comes after the checkpoint of the epoch's last step (the Trainer saves at the
    step's end, evaluates at the epoch's end), so a run resumed from that checkpoint lacks it: the resumed run makes it
    before its first step, on the same model and from the checkpoint's random states, as the uninterrupted run made
    it. Its draws (each data loader draws a seed) then stand, as they stood in the uninterrupted run."""

    def __init__(self, trainer: RunTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer
        if (trainer.eval_dataset is not None and args.eval_strategy == "epoch" and state.global_step > 0
                and float(state.epoch or 0).is_integer()
                and all(evaluation["step"] != state.global_step for evaluation in trainer.run_state["evaluations"])):
            trainer.load_random_states_once(trainer.resumed_from)
            trainer.evaluate()


class _RunProgress(ProgressCallback):
    """The Trainer's progress bar, with the latest loss beside it instead of every log printed below it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


def drop_resume_state(args: TrainingArguments) -> None:
    """A finished run's resume state goes (the main process removes it), unless ``--keep-resume-state``."""
    if not args.keep_resume_state and is_main_process():
        shutil.rmtree(Path(args.output_dir) / RESUME_DIR, ignore_errors=True)


def last_checkpoint(resume_dir: Path) -> Path | None:
    """The newest complete checkpoint (the Trainer writes ``trainer_state.json`` last), or None. A complete one that
    lacks a piece, rift's own state included, is damaged: ``check_resume_state`` says so."""
    done = [path for path in resume_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
            if path.name.rsplit("-", 1)[1].isdigit() and _whole_json(path / "trainer_state.json")]
    return max(done, key=RunTrainer.run_state_step, default=None)


def _whole_json(path: Path) -> bool:
    """Whether ``path`` holds a whole JSON document: the Trainer writes ``trainer_state.json`` in place, so a kill
    while it writes leaves a marker cut short, and the checkpoint is then incomplete."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def train_run(args: TrainingArguments, task: TaskData | None = None, model=None, tokenizer=None,
              objective: Objective | None = None, log=print, callbacks=()) -> dict:
    """``rift train``: fine-tune as ``args`` says, in ``args.output_dir`` (module docstring); returns the metrics.
    ``--resume`` continues an interrupted run from its last checkpoint, and returns a finished run's metrics.
    ``callbacks`` (``transformers.TrainerCallback``) join the Trainer's."""
    output_dir = Path(args.output_dir)
    saved_config = output_dir / CONFIG_FILE
    if saved_config.exists() and not args.resume:
        raise RiftError(f"{output_dir} already holds a rift run; pass --resume to continue it or choose another "
                        "--output-dir")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if args.resume and saved_config.exists():
        changed = changed_training_options(args, saved_config)
        if changed:
            raise RiftError(f"cannot resume {output_dir}: options differ from the interrupted run: {', '.join(changed)}")
        if (output_dir / METRICS_FILE).exists():  # finished before: the same result again, at once
            log(f"{output_dir} finished before; its metrics:")
            drop_resume_state(args)  # a kill may have come between the metrics and the state's removal
            return json.loads((output_dir / METRICS_FILE).read_text(encoding="utf-8"))
    set_seed(args.seed)
    with recording_reads() as read:  # the data, synonym tables and weights the run reads
        task = task or args.load_task(log=log)
        tokenizer = tokenizer or load_tokenizer(args.model, args.trust_remote_code)
        model = model or load_classifier(args.model, task.label_names, args.trust_remote_code)
        trainer = RunTrainer(args, task, model, tokenizer, objective or build_objective(args), log=log,
                             callbacks=callbacks)
    inputs = fingerprints(read)
    checkpoint = last_checkpoint(output_dir / RESUME_DIR) if args.resume else None
    if checkpoint is not None:
        check_inputs(output_dir, inputs, args.allow_changed_data, "the run", log=trainer._message,
                     write=trainer.is_world_process_zero())
        trainer.check_resume_state(checkpoint)  # before the log is cut back to the checkpoint's step
        trainer.resume_run_state(checkpoint)
        trainer._message(f"resuming {output_dir} at step {RunTrainer.run_state_step(checkpoint)}")
    else:
        if args.resume:
            trainer._message(f"no resume state in {output_dir}; starting a new run")
        if trainer.is_world_process_zero():
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / LOG_FILE).unlink(missing_ok=True)
            shutil.rmtree(output_dir / RESUME_DIR, ignore_errors=True)
            (output_dir / INPUTS_FILE).unlink(missing_ok=True)
            save_config(args, saved_config)
    if trainer.is_world_process_zero():
        record_inputs(output_dir, inputs)
    trainer.accelerator.wait_for_everyone()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return trainer.finish()


