"""Named sets of training hyper-parameters for ``rift train --preset NAME`` (plain data: parsing flags imports
no model code)."""

from __future__ import annotations

# Named sets of hyper-parameters for ``--preset``; explicit flags override them. imdb and snli are the paper's
# BERT-base settings (Dong et al., NeurIPS 2021); cpu is a small-scale setting for SST-2 / MR with MiniLM on 2 CPU
# cores, documented in docs/METHOD_NOTES.md; study is the configuration that the study in docs/RESULTS.md
# selected: the discrete adversary, class-balanced batches for every method, 8,000 examples for two epochs, the
# adversarial cross-entropy beside a KL weight of 2, and the MI term on mean-pooled features.
# K, the substitutes per word that ASCC combines: the paper's value, every adversary's default
MAX_SUBSTITUTES = 8
_PAPER = dict(learning_rate=2e-5, weight_decay=2e-4, epochs=20, warmup_ratio=0.1, tau=0.2, ascc_steps=10,
              ascc_learning_rate=1.0, ascc_sparsity_weight=15.0, max_substitutes=MAX_SUBSTITUTES)
PRESETS: dict[str, dict] = {
    "imdb": _PAPER | dict(beta=10.0, alpha=0.1, batch_size=32, max_length=300),
    "snli": _PAPER | dict(beta=5.0, alpha=0.7, batch_size=120, max_length=80),
    "cpu": dict(max_train_examples=8000, max_length=64, batch_size=32, epochs=2, learning_rate=1e-4,
                mixed_precision="bf16", warmup_ratio=0.1, beta=5.0, alpha=0.1, tau=0.2, ascc_steps=5,
                ascc_objective="ce", ascc_learning_rate=1.0, ascc_sparsity_weight=15.0, max_substitutes=MAX_SUBSTITUTES),
    "study": dict(max_train_examples=8000, max_length=64, batch_size=32, epochs=2, learning_rate=1e-4,
                  mixed_precision="no", warmup_ratio=0.1, beta=2.0, adversarial_weight=1.0, feature="mean",
                  alpha=0.1, tau=0.2, class_balanced=True, adversary="discrete", adversary_candidates=32,
                  adversary_query_budget=48, max_substitutes=MAX_SUBSTITUTES),
}

PRESET_NAMES = tuple(PRESETS)
