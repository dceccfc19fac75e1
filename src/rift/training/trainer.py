"""The training loop, on Hugging Face Accelerate so that ``accelerate launch`` / ``torchrun`` runs it unchanged on
several GPUs or machines.

Like ``transformers.Trainer``: one arguments object, and behaviour changed by overriding hooks (``compute_loss``,
``evaluate``, ``on_step_end``). What a run writes to ``output_dir``:

- the best model on the dev split as a plain Hugging Face checkpoint (``config.json``, ``model.safetensors``,
  tokenizer files), loadable by ``transformers.pipeline`` without rift;
- ``rift_config.yaml`` (the full configuration), ``metrics.json``, ``train_log.jsonl``, TensorBoard ``logs/``;
  every dev evaluation also measures how much of the pre-trained features the model keeps (``dev_cka``,
  ``dev_mi_nce``: ``rift.evaluation.retention``), and ``metrics.json`` holds the best checkpoint's ``retention``;
- ``README.md``, the model card (``rift.reporting.model_card``), which ``rift attack`` extends with its results;
- ``resume/``: optimiser, random states, objective state and progress, for ``--resume``; removed when the run
  finishes, unless ``--keep-resume-state``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from rift.accelerator import make_accelerator, pick_mixed_precision
from rift.arguments import TrainingArguments
from rift.config import changed_options as config_changes
from rift.config import save_config
from rift.data import TaskData
from rift.errors import RiftError
from rift.evaluation.accuracy import accuracy
from rift.evaluation.retention import RetentionProbe
from rift.evaluation.robustness import sample_indices
from rift.models import load_classifier, load_tokenizer, unwrap
from rift.objectives import Objective, build_objective, unused_options
from rift.reporting.model_card import write_model_card
from rift.training.batching import encode_examples
from rift.training.context import TrainingContext
from rift.training.sampling import training_batch_sampler

CONFIG_FILE = "rift_config.yaml"
METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.jsonl"
RESUME_DIR = "resume"
STATE_FILE = "trainer_state.json"
# options that may differ between an interrupted run and its resumption: none changes what is trained (a run
# folder may also have been moved)
RESUMABLE_CHANGES = {"resume", "num_threads", "config", "eval_batch_size", "retention_examples", "save_steps",
                     "output_dir", "keep_resume_state"}
# the dev examples of the retention measurement are the same for every seed of a study
RETENTION_SEED = 0


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    batches_in_epoch: int = 0  # batches of the current epoch already consumed
    global_step: int = 0  # optimiser steps taken
    best_dev_accuracy: float | None = None
    best_step: int | None = None
    train_seconds: float = 0.0
    evaluations: list[dict] = field(default_factory=list)


def changed_options(args: TrainingArguments, saved_config: Path) -> list[str]:
    """The options of ``args`` that differ from the run saved in ``saved_config``, besides those that may change and
    those the method never reads (a baseline need not be retrained when only the adversary's options change)."""
    return config_changes(args, saved_config, RESUMABLE_CHANGES | unused_options(args.method, args.adversary))


class Trainer:
    def __init__(
        self,
        args: TrainingArguments,
        task: TaskData | None = None,
        model=None,
        tokenizer=None,
        objective: Objective | None = None,
        log=print,
    ):
        self.args = args
        self.output_dir = Path(args.output_dir)
        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        self.accelerator = make_accelerator(
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            mixed_precision=pick_mixed_precision(args.mixed_precision),
            log_with="tensorboard",
            project_dir=str(self.output_dir / "logs"),
        )
        self._log = log if self.accelerator.is_main_process else (lambda *a, **k: None)
        self._check_output_dir()
        set_seed(args.seed)
        self.task = task or args.load_task(log=self._log)
        self.tokenizer = tokenizer or load_tokenizer(args.model, args.trust_remote_code)
        self.model = model or load_classifier(args.model, self.task.label_names, args.trust_remote_code)
        self.objective = objective or build_objective(args)
        self.encoded = {
            split: encode_examples(self.tokenizer, examples, args.max_length)
            for split, examples in self.task.splits.items()
        }
        self.state = TrainerState()
        self._retention_probe: RetentionProbe | None = None

    # ----------------------------------------------------------------------------------------------- hooks
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms of one batch; ``"loss"`` is the one optimised."""
        return self.objective_module(self.model, batch)

    def evaluate(self, split: str = "dev") -> dict[str, float]:
        """Metrics on a split (``{split}_accuracy``); subclasses may add more."""
        acc = accuracy(self.model, self.encoded[split], self.pad_token_id, self.args.eval_batch_size, self.accelerator)
        metrics = {f"{split}_accuracy": acc}
        probe = self.retention_probe() if split == "dev" else None
        if probe is not None:
            metrics |= {f"dev_{name}": value for name, value in probe(self.model).items()}
        return metrics

    def on_step_end(self, terms: dict[str, float]) -> None:
        """Called after every optimiser step with the step's mean loss terms."""

    # ------------------------------------------------------------------------------------------- the loop
    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def context(self) -> TrainingContext:
        """What the objective and its adversary see of this run (``Objective.setup``)."""
        return TrainingContext(
            model=unwrap(self.model), tokenizer=self.tokenizer, num_labels=self.task.num_labels,
            train_examples=self.task.splits["train"], train_items=self.encoded["train"],
            device=self.accelerator.device, log=self._log, current_step=lambda: self.state.global_step,
        )

    def retention_probe(self) -> RetentionProbe | None:
        """The pre-trained model's features on a seeded dev subset, computed at the first call (on every process
        alike); None when ``retention_examples`` is 0 or the dev split is too small."""
        dev = self.encoded.get("dev") or []
        if self._retention_probe is None and self.args.retention_examples and len(dev) >= 4:
            items = [dev[i] for i in sample_indices(len(dev), self.args.retention_examples, RETENTION_SEED)]
            with torch.random.fork_rng(devices=[]):  # the new head's initialisation must not shift training's draws
                pretrained = load_classifier(self.args.model, self.task.label_names, self.args.trust_remote_code)
            pretrained.to(self.accelerator.device)
            self._retention_probe = RetentionProbe(pretrained, items, self.pad_token_id, self.args.eval_batch_size)
        return self._retention_probe

    def _check_output_dir(self) -> None:
        if (self.output_dir / CONFIG_FILE).exists() and not self.args.resume:
            raise RiftError(f"{self.output_dir} already holds a rift run; pass --resume to continue it or choose another --output-dir")

    def _batch_sampler(self):
        return training_batch_sampler([item.label for item in self.encoded["train"]], self.args.batch_size,
                                      self.args.seed, self.args.class_balanced, self.objective.class_balanced)

    def _optimizer(self) -> torch.optim.Optimizer:
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        named = [(n, p) for module in (self.model, self.objective) for n, p in module.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": self.args.weight_decay},
            {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=self.args.learning_rate)

    def train(self) -> dict:
        args, accelerator = self.args, self.accelerator
        if not self.encoded["train"]:
            raise RiftError("the training split is empty")
        finished = self.output_dir / METRICS_FILE
        if args.resume and finished.exists():  # finished before: the same result again, at once
            self._check_same_config(self.output_dir / CONFIG_FILE)
            self._log(f"{self.output_dir} finished before; its metrics:")
            return json.loads(finished.read_text(encoding="utf-8"))
        self.objective.setup(self.context())
        sampler = self._batch_sampler()
        # its own generator: starting an iteration (as resuming does, mid-epoch) draws a seed from the loader's
        # generator, which must not be the global one that dropout draws from
        loader = DataLoader(
            self.encoded["train"], batch_sampler=sampler,
            collate_fn=lambda items: self.objective.collate(items, self.pad_token_id),
            generator=torch.Generator().manual_seed(args.seed),
        )
        optimizer = self._optimizer()
        # the objective stays reachable unwrapped (self.objective); its trainable heads, if any, train through a
        # distributed wrapper (self.objective_module) like the model
        if any(p.requires_grad for p in self.objective.parameters()):
            self.model, self.objective_module, optimizer, loader = accelerator.prepare(
                self.model, self.objective, optimizer, loader
            )
        else:
            self.model, optimizer, loader = accelerator.prepare(self.model, optimizer, loader)
            self.objective_module = self.objective.to(accelerator.device)

        steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
        total_steps = steps_per_epoch * args.epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, round(args.warmup_ratio * total_steps), total_steps)
        self._start_or_resume()
        with warnings.catch_warnings():  # the schedule is a pure function of the step count: replay it
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for _ in range(self.state.global_step):
                scheduler.step()

        self.model.train()
        running: dict[str, float] = {}
        running_batches = 0
        progress = tqdm(total=total_steps, initial=self.state.global_step, desc="train", unit="step",
                        disable=not accelerator.is_main_process, dynamic_ncols=True)
        while self.state.epoch < args.epochs:
            sampler.start_epoch(self.state.epoch)
            skip = self.state.batches_in_epoch
            batches = accelerator.skip_first_batches(loader, skip) if skip else loader
            started = time.perf_counter()
            for batch in batches:
                with accelerator.accumulate(self.model, self.objective_module):
                    terms = self.compute_loss(batch)
                    accelerator.backward(terms["loss"])
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(
                            [p for group in optimizer.param_groups for p in group["params"]], args.max_grad_norm
                        )
                    optimizer.step()
                    optimizer.zero_grad()
                self.state.batches_in_epoch += 1
                running_batches += 1
                for name, value in terms.items():
                    running[name] = running.get(name, 0.0) + value.detach().float().item()
                if not accelerator.sync_gradients:
                    continue
                scheduler.step()
                self.state.global_step += 1
                means = {name: total / running_batches for name, total in running.items()}
                running, running_batches = {}, 0
                progress.update(1)
                progress.set_postfix(loss=f"{means['loss']:.4f}", refresh=False)
                self.on_step_end(means)
                if args.logging_steps and self.state.global_step % args.logging_steps == 0:
                    self._log_metrics({f"train/{k}": v for k, v in means.items()}
                                      | {"train/learning_rate": scheduler.get_last_lr()[0]})
                evaluated = args.eval_steps and self.state.global_step % args.eval_steps == 0
                if evaluated:
                    self._evaluate_and_keep_best()
                if (args.save_steps and self.state.global_step % args.save_steps == 0) or (evaluated and not args.save_steps):
                    self.state.train_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    self._save_resume_state()
            self.state.train_seconds += time.perf_counter() - started
            self.state.epoch += 1
            self.state.batches_in_epoch = 0
            if not args.eval_steps:
                self._evaluate_and_keep_best()
            self._save_resume_state()
        progress.close()
        return self._finish()

    def _evaluate_and_keep_best(self) -> None:
        if not self.encoded.get("dev"):
            return
        metrics = self.evaluate("dev")
        metrics = {"step": self.state.global_step, "epoch": self.state.epoch} | metrics
        self.state.evaluations.append(metrics)
        self._log_metrics({f"eval/{k}": v for k, v in metrics.items() if k not in ("step", "epoch")})
        self._log(f"step {self.state.global_step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        best = self.state.best_dev_accuracy
        if best is None or metrics["dev_accuracy"] > best:
            self.state.best_dev_accuracy, self.state.best_step = metrics["dev_accuracy"], self.state.global_step
            self._save_model()

    def _save_model(self) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            unwrap(self.model).save_pretrained(self.output_dir, safe_serialization=True)
            self.tokenizer.save_pretrained(self.output_dir)

    def _log_metrics(self, values: dict[str, float]) -> None:
        self.accelerator.log(values, step=self.state.global_step)
        if self.accelerator.is_main_process:
            with open(self.output_dir / LOG_FILE, "a", encoding="utf-8") as stream:
                stream.write(json.dumps({"step": self.state.global_step, **values}) + "\n")

    # --------------------------------------------------------------------------------- start, resume, finish
    def _start_or_resume(self) -> None:
        resume_dir = self.output_dir / RESUME_DIR
        saved_config = self.output_dir / CONFIG_FILE
        if self.args.resume and (resume_dir / STATE_FILE).exists():
            self._check_same_config(saved_config)
            self.accelerator.load_state(str(resume_dir))
            self.state = TrainerState(**json.loads((resume_dir / STATE_FILE).read_text()))
            self._log(f"resuming {self.output_dir} at step {self.state.global_step} (epoch {self.state.epoch})")
        else:
            if self.args.resume:
                self._log(f"no resume state in {self.output_dir}; starting a new run")
            if self.accelerator.is_main_process:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                (self.output_dir / LOG_FILE).unlink(missing_ok=True)
                save_config(self.args, saved_config)
        config = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in dataclasses.asdict(self.args).items()}
        self.accelerator.init_trackers("train", config=config)

    def _check_same_config(self, saved_config: Path) -> None:
        changed = changed_options(self.args, saved_config)
        if changed:
            raise RiftError(f"cannot resume {self.output_dir}: options differ from the interrupted run: {', '.join(changed)}")

    def _save_resume_state(self) -> None:
        """Written to a temporary folder and swapped in, so a crash while saving keeps the previous state."""
        self.accelerator.wait_for_everyone()
        final, partial = self.output_dir / RESUME_DIR, self.output_dir / (RESUME_DIR + ".partial")
        self.accelerator.save_state(str(partial), safe_serialization=True)
        if self.accelerator.is_main_process:
            (partial / STATE_FILE).write_text(json.dumps(dataclasses.asdict(self.state), indent=1))
            old = self.output_dir / (RESUME_DIR + ".old")
            if final.exists():
                final.rename(old)
            partial.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def _finish(self) -> dict:
        accelerator = self.accelerator
        if self.state.best_step is None:  # no dev split: the last model is the result
            self._save_model()
        accelerator.wait_for_everyone()
        best = load_classifier(str(self.output_dir), trust_remote_code=self.args.trust_remote_code).to(accelerator.device)
        metrics = {
            "task": self.task.name, "method": self.args.method, "model": self.args.model, "seed": self.args.seed,
            "num_train_examples": len(self.encoded["train"]), "epochs": self.args.epochs,
            "steps": self.state.global_step, "best_step": self.state.best_step,
            "dev_accuracy": self.state.best_dev_accuracy, "train_seconds": round(self.state.train_seconds, 2),
        }
        adversary = getattr(self.objective, "adversary", None)
        if adversary is not None:
            metrics["adversary"] = {"name": adversary.name, "coverage": adversary.coverage}
        best_evaluation = next((e for e in self.state.evaluations if e["step"] == self.state.best_step), {})
        if "dev_cka" in best_evaluation:
            metrics["retention"] = {"cka": best_evaluation["dev_cka"], "mi_nce": best_evaluation["dev_mi_nce"]}
        if self.encoded.get("test"):
            metrics["test_accuracy"] = accuracy(best, self.encoded["test"], self.pad_token_id, self.args.eval_batch_size, accelerator)
        metrics["evaluations"] = self.state.evaluations
        if accelerator.is_main_process:
            (self.output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
            write_model_card(self.output_dir)
            if not self.args.keep_resume_state:
                shutil.rmtree(self.output_dir / RESUME_DIR, ignore_errors=True)
        accelerator.end_training()
        return metrics
