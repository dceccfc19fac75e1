"""The report's plots. matplotlib's object API (``Figure``, drawn by Agg, no pyplot and no global backend) renders
each one to PNG, inlined as base64 so that the page needs no other file and makes no request."""

from __future__ import annotations

import base64
import html
import io

from matplotlib.figure import Figure

PANEL = (4.2, 3.2)  # inches per panel


def figure_html(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _panels(count: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(PANEL[0] * count, PANEL[1]), layout="constrained")
    return figure, list(figure.subplots(1, count, squeeze=False)[0])


def robustness_figure(points: dict[str, dict[str, list[tuple]]], attacks: list[str], title: str) -> Figure:
    """One panel per attack: accuracy under attack against clean accuracy, one point per seed, a colour per method
    (``points[method][attack]`` = [(clean, robust, (low, high) or None), ...]), with the 95% interval of the robust
    accuracy as a vertical bar."""
    figure, axes = _panels(len(attacks))
    figure.suptitle(title)
    for ax, attack in zip(axes, attacks):
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=1, zorder=0)  # robust = clean: the attack changed nothing
        for method, by_attack in points.items():
            found = by_attack.get(attack, [])
            if not found:
                continue
            clean, robust = [p[0] for p in found], [p[1] for p in found]
            # an interval bound equals its point up to rounding at 0% and 100%: never a negative bar
            bars = [[max(0.0, r - (p[2] or (r, r))[0]) for p, r in zip(found, robust)],
                    [max(0.0, (p[2] or (r, r))[1] - r) for p, r in zip(found, robust)]]
            ax.errorbar(clean, robust, yerr=bars, fmt="o", markersize=6, capsize=3, alpha=0.85, label=method)
        ax.set(title=attack, xlabel="clean accuracy", ylabel="accuracy under attack (95% interval)", xlim=(0, 1.02),
               ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    if points:
        axes[0].legend(fontsize="small")
    return figure


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pairs = [(row["step"], row[key]) for row in rows if row.get(key) is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


DIAGNOSTICS = ("train/grad_norm", "train/clipped", "train/mi_bound", "train/mi_ceiling")


def training_figure(rows: list[dict], title: str) -> Figure:
    """A cell's train_log.jsonl: every loss term by step; the diagnostics (the norm of each weighted term's gradient
    on the encoder, on a log scale, and the share of clipped steps; RIFT's InfoNCE bound against its ceiling) where
    they were logged; the dev accuracy."""
    figure, (losses, gradients, information, dev) = _panels(4)
    figure.suptitle(title)
    keys = sorted({key for row in rows for key in row if key.startswith("train/") and key != "train/learning_rate"})
    terms = [key for key in keys if not key.startswith(DIAGNOSTICS)]
    for key in terms:
        losses.plot(*_series(rows, key), label=key.removeprefix("train/"), linewidth=1.2)
    losses.set(title="loss terms", xlabel="step")
    norms = [key for key in keys if key.startswith("train/grad_norm/")]
    for key in norms:
        gradients.plot(*_series(rows, key), marker="o", markersize=3, label=key.removeprefix("train/grad_norm/"),
                       linewidth=1.2)
    if norms:
        gradients.set_yscale("log")
    clipped = gradients.twinx()
    clipped.plot(*_series(rows, "train/clipped"), color="0.6", linestyle=":", label="share clipped")
    clipped.set(ylim=(-0.02, 1.02), ylabel="share of steps clipped")
    gradients.set(title="gradient norm on the encoder, per weighted term", xlabel="step")
    for key, style in (("train/mi_bound", "-"), ("train/mi_ceiling", "--")):
        information.plot(*_series(rows, key), linestyle=style, color="C4", label=key.removeprefix("train/"))
    information.set(title="InfoNCE bound and its ceiling (nats)", xlabel="step")
    for ax, lines in ((losses, terms), (gradients, norms), (information, keys)):
        if lines and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    dev.plot(*_series(rows, "eval/dev_accuracy"), marker="o", color="C3")
    dev.set(title="dev accuracy", xlabel="step", ylim=(0, 1.02))
    for ax in (losses, gradients, information, dev):
        ax.grid(alpha=0.3)
    return figure


def retention_figure(logs: dict[str, list[dict]], title: str) -> Figure:
    """CKA and the InfoNCE mutual-information bound against the pre-trained features, by step, a line per cell."""
    figure, axes = _panels(2)
    figure.suptitle(title)
    for ax, key, name in zip(axes, ("eval/dev_cka", "eval/dev_mi_nce"), ("linear CKA", "InfoNCE MI bound (nats)")):
        for cell, rows in logs.items():
            ax.plot(*_series(rows, key), marker="o", markersize=3, label=cell, linewidth=1.2)
        ax.set(title=name, xlabel="step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small")
    return figure
