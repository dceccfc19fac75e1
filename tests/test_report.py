"""``rift report`` on a made-up grid: one self-contained, escaped HTML page, and headless Chromium renders its tables,
plots and highlighted adversarial examples."""

from __future__ import annotations

import json
import re
from dataclasses import replace
import shutil
import subprocess
from pathlib import Path

import pytest

from rift.arguments import BenchArguments, ReportArguments
from rift.attacks.results import AttackResult, WordChange
from rift.bench import write_results
from rift.evaluation.records import ATTACK_METRICS, paired_comparisons, summarize_grid
from rift.reporting.report import write_report
from rift.text.words import split_words

ATTACKS = ["ascc", "pwws"]
NASTY = 'a <script>alert("x")</script> & boring film'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def attack_result(index: int, status: str, text: str, old: str, new: str, pair: str | None = None) -> AttackResult:
    attacked = pair if pair is not None else text
    position = [w.text for w in split_words(attacked)].index(old)
    adversarial = attacked.replace(old, new) if status != "skipped" else attacked
    changes = [WordChange(position, old, new)] if status != "skipped" else []
    return AttackResult(index=index, label=0, status=status, text=text, text_pair=pair,
                        adversarial_text=adversarial if pair is None else text,
                        adversarial_text_pair=adversarial if pair is not None else None,
                        clean_prediction=0, clean_probabilities=[0.9, 0.1],
                        adversarial_prediction=1 if status == "succeeded" else 0,
                        adversarial_probabilities=[0.3, 0.7] if status == "succeeded" else [0.6, 0.4],
                        changes=changes, num_words=len(split_words(attacked)), queries=10, seconds=0.01)


def make_cell(directory: Path, seed: int, holds_nasty: bool) -> None:
    (directory / "attacks").mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"id2label": {"0": "negative", "1": "positive"}}))
    rows = [{"step": step, "train/loss": 1.0 / step, "train/ce": 0.8 / step, "train/kl": 0.1} for step in range(1, 9)]
    rows += [{"step": step, "eval/dev_accuracy": 0.6 + 0.05 * step / 4, "eval/dev_cka": 1 - 0.1 * step / 4,
              "eval/dev_mi_nce": 4.0 - 0.5 * step / 4 - seed} for step in (4, 8)]
    (directory / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    results = [attack_result(0, "failed", "a dull , boring plot", "dull", "drab"),
               attack_result(1, "failed" if holds_nasty else "succeeded", NASTY, "boring", "tedious"),
               attack_result(2, "skipped", "fine", "fine", "fine"),
               attack_result(3, "succeeded", "a man sleeps .", "rests", "naps", pair="a person rests quietly .")]
    # the pair's change lies outside the model's training surface
    results[3].changes = [replace(c, in_training_surface=False) for c in results[3].changes]
    for attack in ATTACKS:
        (directory / "attacks" / f"examples_{attack}.jsonl").write_text(
            "".join(json.dumps(r.to_dict()) + "\n" for r in results))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grid")
    args = BenchArguments(output_dir=str(out), task=["sst2"], methods=["standard", "rift"], seeds=[0, 1], attacks=ATTACKS)
    records = []
    for method in args.methods:
        rift = method == "rift"  # rift holds example 1 in both seeds, and its numbers are higher
        for seed in args.seeds:
            make_cell(out / "cells" / f"sst2-{method}-s{seed}", seed, holds_nasty=rift)
            record = dict(task="sst2", method=method, seed=seed, directory=f"cells/sst2-{method}-s{seed}",
                          test_accuracy=0.8 + 0.01 * seed - 0.01 * rift * (seed + 1), dev_accuracy=0.82,
                          retention_cka=0.7 + 0.1 * rift, retention_mi_nce=3.0, train_seconds=100.0 + seed)
            for attack in ATTACKS:
                record |= {f"{attack}/{key}": 0.5 + 0.1 * seed + 0.25 * rift for key in ATTACK_METRICS}
            records.append(record)
    write_results(args, records, summarize_grid(records, ATTACKS), paired_comparisons(args, records))
    return write_report(ReportArguments(bench_dir=str(out)))


def test_report_is_one_self_contained_escaped_page(report):
    page = report.read_text()
    assert page.count('<table class="results">') == 5
    assert "<td>sst2</td><td>standard</td><td>2</td><td>0.805 ± 0.007</td>" in page
    assert "<td>sst2</td><td>rift</td><td>2</td><td>0.790 ± 0.000</td>" in page
    # the per-cell table: each seed's own numbers (test acc, dev acc, under ascc, under pwws, CKA, MI, train s)
    assert ("<tr><td>sst2</td><td>rift</td><td>1</td><td>0.790</td><td>0.820</td><td>0.850</td><td>0.850</td>"
            "<td>0.800</td><td>3.00</td><td>101.0</td></tr>") in page
    # rift - standard, seed by seed: +25 points under each attack, -1 and -2 points of test accuracy (mean -1.5, its
    # seed-level interval -1.5 ± t(1) 12.706 * 0.707 / sqrt(2) = [-7.9, +4.9]), +0.1 CKA; example 1 is held by rift
    # only, in both seeds: 2 : 0 for each attack, exact McNemar p = 2 / 2^2; pooled over the seeds, 2 of 8 examples
    # held by both and 2 by rift only: +25 points, Newcombe's interval [-4.2, +48.3]
    differences = ("<td>sst2</td><td>rift − standard</td><td>2</td>"
                   + "<td>+25.0 [+25.0, +25.0] (+25.0, +25.0)</td>" * 2
                   + "<td>-1.5 [-7.9, +4.9] (-1.0, -2.0)</td><td>+0.0 [+0.0, +0.0] (+0.0, +0.0)</td>"
                   + "<td>+0.100 [+0.100, +0.100] (+0.100, +0.100)</td><td>+0.00 [+0.00, +0.00] (+0.00, +0.00)</td>"
                   + "<td>2 : 0 (p 0.5); +25.0 [-4.2, +48.3]</td>" * 2)
    assert differences in page
    images = re.findall(r'<img class="plot" alt="[^"]*" src="([^"]{0,30})', page)
    assert len(images) == 1 + 4 + 1 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"https?://|<link|<script|url\(", page)  # nothing to fetch, nothing to run
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;" in page
    assert '<mark class="old">boring</mark>' in page and '<mark class="new">tedious</mark>' in page
    assert "<i>a man sleeps .</i>" in page  # a pair: the hypothesis is attacked; its change is outlined as outside
    assert '<mark class="new outside" title="outside the training adversary\'s surface">naps</mark>' in page
    # the same examples across the four models, per attack: example 1 (standard breaks, rift holds) first
    across = page.index("sst2, pwws: 4 examples attacked on every model; 4 shown, those the models disagree on first")
    assert page.index("tedious", across) < page.index("drab", across)
    # succeeded attacks come first
    first = page.index("<details open>")
    assert page.index("status-succeeded", first) < page.index("status-failed", first) < page.index("status-skipped", first)


def run_chromium(arguments: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([CHROMIUM, *flags, *arguments], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs it when run as root): report not rendered")
    dom = run_chromium(["--dump-dom", report.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<table class="results">') == 5
    assert len(re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,', dom.stdout)) == 6
    # 8 in the per-cell examples (every cell, both attacks), 4 in the view across models (standard broke it)
    assert dom.stdout.count("<details") == 4 and dom.stdout.count('<mark class="new">tedious</mark>') == 12
    assert "<script>alert" not in dom.stdout

    from PIL import Image

    screenshot = tmp_path / "report.png"
    shot = run_chromium([f"--screenshot={screenshot}", "--window-size=1400,2400", report.as_uri()], tmp_path)
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1400, 2400)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100  # text, tables and coloured plots, not a blank page
    assert max(count for count, _ in colours) < 0.95 * 1400 * 2400


def test_the_report_keeps_every_recorded_cell(report, tmp_path):
    """A study continued with another seed (a later rift bench call naming only it) keeps its earlier cells."""
    from rift.evaluation.records import recorded_results

    bench = tmp_path / "grid"
    shutil.copytree(report.parent, bench)
    extra = bench / "cells" / "sst2-rift-s7"
    make_cell(extra, 7, holds_nasty=True)
    (extra / "metrics.json").write_text(json.dumps({"test_accuracy": 0.7, "dev_accuracy": 0.71}))
    results = recorded_results(bench)
    assert [c["directory"] for c in results["cells"]][-1] == "cells/sst2-rift-s7"
    assert results["settings"]["seeds"] == [0, 1, 7]
    rift = next(row for row in results["summary"] if row["method"] == "rift")
    assert rift["seeds"] == [0, 1, 7] and rift["metrics"]["test_accuracy"]["n"] == 3
    page = write_report(ReportArguments(bench_dir=str(bench))).read_text()
    assert "<td>sst2</td><td>rift</td><td>3</td>" in page and "sst2-rift-s7" in page


def test_the_scatter_draws_no_and_full_robustness():
    """At 0% and 100% a Wilson bound equals its point up to rounding: the bars must not go negative."""
    from rift.statistics import wilson_interval
    from rift.reporting.plots import robustness_figure

    points = {"m": {"pwws": [(0.9, 0.0, list(wilson_interval(0, 100))),
                             (1.0, 1.0, list(wilson_interval(872, 872)))]}}
    figure = robustness_figure(points, ["pwws"], "edges")
    assert len(figure.axes[0].collections) >= 1
