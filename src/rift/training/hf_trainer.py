"""``RobustTrainer``: a ``transformers.Trainer`` that trains with any rift objective and adversary, for an existing
Hugging Face training script.

    trainer = RobustTrainer(model=model, args=transformers.TrainingArguments("out"), train_dataset=dataset,
                            processing_class=tokenizer, method="rift", robust_options={"adversary": "discrete"})
    trainer.train()

It extends the documented points of ``transformers.Trainer``: ``compute_loss`` computes the objective's loss terms
(which ``log`` adds to the Trainer's logs, as ``rift/TERM``), ``create_optimizer`` adds the objective's own
trainable heads (RIFT's projection heads) to the optimiser, ``get_train_dataloader`` gives the objective the
batches it needs (class-balanced for RIFT, with each example's word alignment for the adversary), and checkpoints
keep the objective's state (``rift_objective.safetensors``) so that ``train(resume_from_checkpoint=...)`` continues
it. The model stays an ordinary Hugging Face model: ``save_model`` writes a plain checkpoint. Launched with
``accelerate launch`` or ``torchrun``, the heads' gradients are averaged across processes like the model's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.trainer_pt_utils import safe_globals
from transformers.utils import SAFE_WEIGHTS_NAME
from torch.utils.data import DataLoader

from rift.arguments import TrainingArguments
from rift.config import build_config
from rift.data import Example
from rift.errors import RiftError
from rift.models import unwrap
from rift.objectives import Objective, build_objective
from rift.prediction import forget_prediction
from rift.data.batching import EncodedExample, collate, encode_examples, model_inputs
from rift.adversaries.context import TrainingContext
from rift.data.sampling import training_batch_sampler

OBJECTIVE_STATE_FILE = "rift_objective.safetensors"
# rift train options that transformers.TrainingArguments owns in a transformers.Trainer script
OWNED_BY_HF = ("output_dir", "epochs", "batch_size", "eval_batch_size", "learning_rate", "weight_decay", "warmup_ratio",
               "max_grad_norm", "gradient_accumulation_steps", "mixed_precision", "eval_steps", "save_steps",
               "logging_steps", "resume", "keep_resume_state", "num_threads", "seed", "method")


def examples_from_dataset(dataset, text_column: str, label_column: str, text_pair_column: str | None = None,
                          what: str = "train_dataset") -> list[Example]:
    """Rows of a ``datasets.Dataset`` (or any sequence of mappings) as rift examples; a missing column, an empty
    text or a label that is not a class id is a one-line ``RiftError``."""
    if dataset is None:
        raise RiftError(f"{what} is required")
    if isinstance(dataset, Mapping) and not hasattr(dataset, "column_names"):
        raise RiftError(f"{what}: give one dataset (a datasets.Dataset or a sequence of rows), not a mapping of "
                        f"{', '.join(map(str, dataset))}")
    columns = getattr(dataset, "column_names", None)
    needed = [c for c in (text_column, label_column, text_pair_column) if c]
    if columns is not None and (missing := [c for c in needed if c not in columns]):
        raise RiftError(f"{what} has no column {', '.join(map(repr, missing))}; its columns are {', '.join(columns)}")
    examples = []
    for row_number, row in enumerate(dataset):
        if isinstance(row, Example):  # rift's own examples, already checked when read
            examples.append(row)
            continue
        if not isinstance(row, Mapping):
            raise RiftError(f"{what} row {row_number}: expected a mapping of column names to values, got "
                            f"{type(row).__name__}")
        try:
            values = {c: row[c] for c in needed}
        except KeyError as error:
            raise RiftError(f"{what} row {row_number}: no column {error}") from None
        for column in (text_column, text_pair_column):
            if column and (not isinstance(values[column], str) or not values[column].strip()):
                raise RiftError(f"{what} row {row_number}: column {column!r} must be a non-empty text, got "
                                f"{values[column]!r}")
        label = values[label_column]
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise RiftError(f"{what} row {row_number}: label column {label_column!r} must hold class ids 0, 1, ..., "
                            f"got {label!r}")
        examples.append(Example(text=values[text_column].strip(), label=label,
                                text_pair=values[text_pair_column].strip() if text_pair_column else None))
    if not examples:
        raise RiftError(f"{what} is empty")
    return examples


def term_gradient_norms(model, parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """The L2 norm of each loss part's gradient on the encoder's parameters (the model without its classification
    head), each from its own backward pass through the step's graph; the graph is kept for the step's own backward.
    Parameters and their ``.grad`` are untouched."""
    encoder = [p for p in unwrap(model).base_model.parameters() if p.requires_grad]
    norms = {}
    for name, part in parts.items():
        if not part.requires_grad:
            norms[name] = 0.0
            continue
        gradients = torch.autograd.grad(part, encoder, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.float().pow(2).sum()) for g in gradients if g is not None))
    return norms


class RobustTrainer(transformers.Trainer):
    # the objective's loss is a mean over its batch: the Trainer divides it over accumulated batches
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model=None,
        args: transformers.TrainingArguments | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        method: str = "rift",
        robust_options: dict[str, Any] | None = None,
        objective: Objective | None = None,
        robust_args: TrainingArguments | None = None,
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = None,
        max_length: int | None = None,
        **kwargs,
    ):
        """``method`` and ``robust_options`` are ``rift train``'s (``{"adversary": "discrete", "beta": 5.0}``;
        ``preset`` included), checked as the command line checks them, except those ``args`` owns (epochs, batch
        size, learning rate, ...); ``objective`` replaces the one they name. ``max_length`` defaults to the preset's
        or rift's (128). The datasets have a text column and an integer label column (``datasets.ClassLabel``).
        ``robust_args``, a whole ``rift.TrainingArguments``, replaces ``robust_options`` (``rift train`` passes its
        own)."""
        if not isinstance(model, torch.nn.Module):
            raise RiftError(f"RobustTrainer needs model, a sequence classifier (rift.load_classifier), got "
                            f"{type(model).__name__}")
        if robust_options is not None and not isinstance(robust_options, dict):
            raise RiftError(f"robust_options: expected a dict of rift train options ({{'adversary': 'discrete'}}), got "
                            f"{robust_options!r}")
        if processing_class is None or not getattr(processing_class, "is_fast", False):
            raise RiftError("RobustTrainer needs processing_class, a fast tokenizer (rift aligns words with tokens)")
        args = args or transformers.TrainingArguments("rift_trainer_output")
        from rift.presets import PRESETS

        if robust_args is not None:
            self.robust_args = robust_args
        else:
            options = dict(robust_options or {})
            owned = sorted(set(options) & set(OWNED_BY_HF))
            if owned:
                raise RiftError(f"robust_options: {', '.join(owned)} belong to transformers.TrainingArguments (args) "
                                "here")
            if max_length is not None:
                options["max_length"] = max_length
            try:
                self.robust_args = build_config(TrainingArguments, options | {
                    "seed": args.seed, "method": method, "output_dir": args.output_dir}, PRESETS, check_paths=False)
            except RiftError as error:
                raise RiftError(f"robust_options: {error}") from None
        self._columns = dict(text_column=text_column, label_column=label_column, text_pair_column=text_pair_column)
        self.train_examples = examples_from_dataset(train_dataset, **self._columns)
        self.objective = objective or build_objective(self.robust_args)
        tokenizer = processing_class
        self.train_items = encode_examples(tokenizer, self.train_examples, self.robust_args.max_length)
        eval_items = None if eval_dataset is None else self._encoded(eval_dataset, "eval_dataset", tokenizer)
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._terms: dict[str, float] = {}
        self._term_batches = 0
        self._clipped = self._clip_steps = 0  # optimiser steps since the last log, and those clipped
        self._diagnostics: dict[str, float] = {}  # gradient norms of the last diagnosed step, until they are logged
        self._diagnosed_step: int | None = None
        super().__init__(model=model, args=args, train_dataset=self.train_items, eval_dataset=eval_items,
                         processing_class=tokenizer, data_collator=self._collate, **kwargs)
        num_labels = self.model.config.num_labels
        if max(e.label for e in self.train_examples) >= num_labels:
            raise RiftError(f"the model predicts {num_labels} labels, train_dataset has label "
                            f"{max(e.label for e in self.train_examples)}")
        # how a model predicts is its own training's to say (dne records an average): not inherited from the
        # checkpoint it was fine-tuned from
        forget_prediction(self.model)
        self.objective.setup(TrainingContext(
            model=self.model, tokenizer=tokenizer, num_labels=num_labels, train_examples=self.train_examples,
            train_items=self.train_items, device=self.args.device, log=self._message,
            current_step=lambda: self.state.global_step, current_epoch=lambda: self.state.epoch or 0.0))
        self.objective.to(self.args.device)
        self._sampler = None
        self.add_callback(_ObjectiveHooks(self))

    def _message(self, text: str) -> None:
        if self.is_world_process_zero():
            print(text)

    def _collate(self, items: Sequence) -> dict[str, torch.Tensor]:
        return self.objective.collate(items, self._pad)

    # ------------------------------------------------------------------------------- the extension points
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation: the model's own loss and outputs on clean inputs
            outputs = model(**model_inputs(inputs), labels=inputs["labels"])
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        terms = self.objective(model, inputs)
        for name, value in terms.items():
            self._terms[name] = self._terms.get(name, 0.0) + value.detach().float().item()
        self._term_batches += 1
        every, step = self.robust_args.diagnostics_steps, self.state.global_step
        # on the first batch of every N-th step, in one process (other processes' batches are not seen)
        if every and (step + 1) % every == 0 and self._diagnosed_step != step and self.accelerator.num_processes == 1:
            self._diagnosed_step = step
            self._diagnostics = {f"grad_norm/{name}": norm for name, norm in
                                 term_gradient_norms(model, self.objective.loss_parts(terms)).items()}
        return (terms["loss"], None) if return_outputs else terms["loss"]

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.num_processes > 1 and self.accelerator.sync_gradients:
            # the heads are not inside the model's distributed wrapper: average their accumulated gradients, every
            # head on every process (a head without a gradient here, a class absent from this batch, adds zeros)
            for parameter in self.objective.parameters():
                if parameter.requires_grad:
                    if parameter.grad is None:
                        parameter.grad = torch.zeros_like(parameter)
                    torch.distributed.all_reduce(parameter.grad, op=torch.distributed.ReduceOp.AVG)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._term_batches:
            logs = logs | {f"rift/{name}": total / self._term_batches for name, total in self._terms.items()
                           if name != "loss"}
            if self._clip_steps:  # the share of the optimiser steps since the last log whose gradient was clipped
                logs["rift/clipped"] = self._clipped / self._clip_steps
            logs |= {f"rift/{name}": value for name, value in self._diagnostics.items()}
            self._terms, self._term_batches, self._clipped, self._clip_steps, self._diagnostics = {}, 0, 0, 0, {}
        super().log(logs, start_time)

    def _clip_grad_norm(self, model):
        # the objective's heads are clipped together with the model, as one set of trained parameters
        heads = [p for p in self.objective.parameters() if p.requires_grad]
        norm = self.accelerator.clip_grad_norm_([*model.parameters(), *heads], self.args.max_grad_norm)
        self._clipped += int(float(norm) > self.args.max_grad_norm)
        self._clip_steps += 1
        return norm

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        heads = [p for p in self.objective.parameters() if p.requires_grad]
        known = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if heads and not any(id(p) in known for p in heads):
            optimizer.add_param_group({"params": heads, "weight_decay": self.args.weight_decay})
        return optimizer

    def get_train_dataloader(self) -> DataLoader:
        sampler = training_batch_sampler([item.label for item in self.train_items],
                                         self.args.per_device_train_batch_size, self.args.seed,
                                         self.robust_args.class_balanced, self.objective.class_balanced)
        self._sampler = sampler  # _ObjectiveHooks tells it its epoch, also after a resume mid-epoch
        # its own generator: starting an iteration (as resuming does, mid-epoch) draws a seed from the loader's
        # generator, which must not be the global one that dropout draws from
        loader = DataLoader(self.train_items, batch_sampler=sampler, collate_fn=self._collate,
                            num_workers=self.args.dataloader_num_workers,
                            generator=torch.Generator().manual_seed(self.args.seed))
        return self.accelerator.prepare(loader)

    def _encoded(self, dataset, what: str, tokenizer=None) -> list:
        if dataset is None:
            raise RiftError(f"{what} is required")
        if isinstance(dataset, list) and all(isinstance(item, EncodedExample) for item in dataset):
            return dataset
        return encode_examples(tokenizer or self.processing_class,
                               examples_from_dataset(dataset, **self._columns, what=what), self.robust_args.max_length)

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        items = self._encoded(self.eval_dataset if eval_dataset is None else eval_dataset, "eval_dataset")
        return self._plain_loader(items)

    def get_test_dataloader(self, test_dataset) -> DataLoader:
        return self._plain_loader(self._encoded(test_dataset, "test_dataset"))

    def _plain_loader(self, items) -> DataLoader:
        loader = DataLoader(items, batch_size=self.args.per_device_eval_batch_size, shuffle=False,
                            collate_fn=lambda batch: collate(batch, self._pad))
        return self.accelerator.prepare(loader)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # the model takes its inputs and labels, not rift's bookkeeping (example indices)
        inputs = model_inputs(inputs) | {"labels": inputs["labels"]}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    # ------------------------------------------------------------------------- the objective's checkpoints
    def _save_checkpoint(self, model, trial):
        # written before the Trainer's own files, whose last, trainer_state.json, marks a checkpoint complete
        if self.is_world_process_zero():
            folder = Path(self._get_output_dir(trial)) / f"{transformers.trainer_utils.PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in self.objective.state_dict().items()}
            if state:
                save_file(state, str(folder / OBJECTIVE_STATE_FILE))
            self._checkpoint_extras(folder)
        super()._save_checkpoint(model, trial)

    def _checkpoint_extras(self, folder: Path) -> None:
        """What a subclass keeps in each checkpoint besides the Trainer's files and the objective's state."""

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = transformers.trainer_utils.get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise RiftError(f"no checkpoint to resume from in {self.args.output_dir}")
        if resume_from_checkpoint:
            self.check_resume_state(Path(resume_from_checkpoint))
        if resume_from_checkpoint and self.objective.state_dict():
            saved = Path(resume_from_checkpoint) / OBJECTIVE_STATE_FILE
            if not saved.exists():
                raise RiftError(f"{resume_from_checkpoint} has no {OBJECTIVE_STATE_FILE}: the objective's trained heads "
                                "were not saved with it, so it cannot be resumed exactly")
            state = resume_piece(saved, lambda: load_file(str(saved), device=str(self.args.device)))
            self.objective.load_state_dict(state)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def check_resume_state(self, checkpoint: Path) -> None:
        """Every piece of the checkpoint that resuming reads is there and readable: the Trainer would resume without
        a missing random state (no longer the same run) and stop with a traceback on a damaged file."""
        rng = "rng_state.pth" if self.args.world_size <= 1 else f"rng_state_{self.args.process_index}.pth"
        for name in ("optimizer.pt", "scheduler.pt", rng):
            path = checkpoint / name
            with safe_globals():
                resume_piece(path, lambda: torch.load(path, weights_only=True, map_location="cpu"))
        weights = checkpoint / SAFE_WEIGHTS_NAME
        resume_piece(weights, lambda: load_file(str(weights)))


def resume_piece(path: Path, read):
    """``read()``, or one line saying that the resume state's ``path`` is missing or damaged."""
    if not path.is_file():
        raise RiftError(f"cannot resume from {path.parent}: {path.name} is missing; delete that checkpoint folder to "
                        "resume from an earlier one, or train again")
    try:
        return read()
    except Exception as error:  # noqa: BLE001 - torch, pickle and safetensors fail in many ways on a damaged file
        raise RiftError(f"cannot resume from {path.parent}: {path.name} is damaged ({str(error).splitlines()[0][:200]});"
                        " delete that checkpoint folder to resume from an earlier one, or train again") from None


class _ObjectiveHooks(transformers.TrainerCallback):
    """What the Trainer does for the model and must also be done for the objective: tell the training batches'
    sampler the epoch at every epoch's start (through accelerate's wrappers, several processes or a resume
    mid-epoch, the Trainer's own ``set_epoch`` does not reach it), and clear the heads' gradients after every
    optimiser step (the Trainer clears only the model's)."""

    def __init__(self, trainer: RobustTrainer):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.trainer._sampler is not None:
            self.trainer._sampler.start_epoch(int(state.epoch or 0))

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.objective.zero_grad(set_to_none=True)
