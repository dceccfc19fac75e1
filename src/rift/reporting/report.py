"""``rift report OUT``: one self-contained HTML page of a ``rift bench`` grid, to read a study at a glance and to
look at what the attacks actually did.

The page holds the results tables, clean against robust accuracy per method and attack, every cell's training
curves, the feature-retention curves, and a sample of adversarial examples per cell and attack (succeeded ones
first) with the substituted words marked beside the originals. It makes no request: CSS is inline and the plots
are base64 PNG; every piece of text from the data is escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from rift.arguments import ReportArguments, attack_entry
from rift.attacks.results import AttackResult, with_worst_case
from rift.errors import RiftError
from rift.evaluation.records import attack_folder_name, read_json, recorded_results
from rift.evaluation.robustness import examples_file, read_results
from rift.reporting.plots import (
    figure_html,
    retention_figure,
    robustness_figure,
    training_figure,
)
from rift.files import write_atomic
from rift.reporting.tables import grid_tables, to_html
from rift.run_folder import GRID_RESULTS_FILE, REPORT_FILE, for_split
from rift.text.words import replace_words, split_words

STATUS_ORDER = {"succeeded": 0, "failed": 1, "skipped": 2}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; display: block; max-width: 100%; overflow-x: auto; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ddd; padding: .3em .6em; vertical-align: top; }
th { background: #f3f3f3; } table.results td { text-align: right; white-space: nowrap; }
table.results td:nth-child(-n+3) { text-align: left; }
img.plot { max-width: 100%; display: block; margin: .8em 0; }
details { margin: .5em 0; border: 1px solid #ddd; border-radius: 4px; padding: .4em .8em; }
summary { cursor: pointer; font-weight: 600; }
mark.old { background: #fde2e1; text-decoration: line-through; }
mark.new { background: #d9f2d9; }
mark.outside { outline: 2px dashed #c0392b; }
.status-succeeded { color: #b3261e; } .status-failed { color: #1e6b2e; } .status-skipped { color: #777; }
.settings { color: #555; font-size: .9em; }
"""


def write_report(args: ReportArguments) -> Path:
    bench = Path(args.bench_dir)
    if not bench.is_dir():
        raise RiftError(f"{bench} is not a folder; give the output folder of rift bench")
    results_file = bench / for_split(GRID_RESULTS_FILE, args.split)
    try:
        results = read_json(results_file)
    except (ValueError, UnicodeDecodeError):
        raise RiftError(f"{results_file} is not valid JSON") from None
    if not results:
        raise RiftError(f"{bench} holds no {results_file.name}; run rift bench --output-dir {bench}"
                        + ("" if args.split == "test" else f" --split {args.split}") + " first")
    if not isinstance(results, dict) or not {"settings", "cells", "summary"} <= results.keys():
        raise RiftError(f"{bench} is not a rift bench folder: its {results_file.name} lacks the bench's settings, "
                        "cells and summary (rift report reads what rift bench writes, not rift attack's results)")
    results = recorded_results(bench, args.split)
    output = Path(args.output) if args.output else bench / for_split(REPORT_FILE, args.split)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, render_report(bench, results, args.max_examples))
    return output


def render_report(bench: Path, results: dict, max_examples: int) -> str:
    settings = results["settings"]
    shown = ("task", "methods", "seeds", "attacks", "model", "preset", "split", "num_examples", "genetic_num_examples",
             "protocol")
    summary = ", ".join(f"{key}: {','.join(map(str, value)) if isinstance(value, list) else value}"
                        for key in shown if (value := settings.get(key)) is not None)
    logs = {cell["directory"]: read_log(bench / cell["directory"] / "train_log.jsonl") for cell in results["cells"]}
    sections = [
        ("Results", to_html(grid_tables(results))),
        ("Clean and robust accuracy", robustness_plots(results)),
        ("Training curves", training_plots(results, logs)),
        ("Feature retention", retention_plots(results, logs)),
        ("The same examples across models", across_models_html(bench, results, max_examples)),
        ("Adversarial examples", examples_html(bench, results, max_examples)),
    ]
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{content}</section>" for title, content in sections)
    title = html.escape(f"rift report: {bench.resolve().name}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
            f'<p class="settings">{html.escape(summary)}</p>{body}</body></html>\n')


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _by_task(results: dict) -> dict[str, list[dict]]:
    tasks: dict[str, list[dict]] = {}
    for cell in results["cells"]:
        tasks.setdefault(cell["task"], []).append(cell)
    return tasks


def robustness_points(cells: list[dict], attacks: list[str]) -> dict[str, dict[str, list[tuple]]]:
    """``points[method][attack]``: (clean accuracy, robust accuracy, its interval) of each cell, ``attacks`` being
    the report's columns (the worst case among them)."""
    points: dict[str, dict[str, list]] = {}
    for cell in cells:
        for attack in attacks:
            clean, robust = cell.get(f"{attack}/clean_accuracy"), cell.get(f"{attack}/robust_accuracy")
            if clean is not None and robust is not None:
                interval = cell.get(f"{attack}/robust_accuracy_interval")
                points.setdefault(cell["method"], {}).setdefault(attack, []).append((clean, robust, interval))
    return points


def robustness_plots(results: dict) -> str:
    attacks = with_worst_case(results["settings"]["attacks"])  # the worst case's panel first: clean against worst case
    return "".join(figure_html(robustness_figure(robustness_points(cells, attacks), attacks, task),
                               f"clean and robust accuracy, {task}") for task, cells in _by_task(results).items())


def training_plots(results: dict, logs: dict[str, list[dict]]) -> str:
    return "".join(figure_html(training_figure(logs[cell["directory"]], Path(cell["directory"]).name),
                               f"training curves of {cell['directory']}") for cell in results["cells"])


def retention_plots(results: dict, logs: dict[str, list[dict]]) -> str:
    parts = []
    for task, cells in _by_task(results).items():
        task_logs = {Path(cell["directory"]).name: logs[cell["directory"]] for cell in cells}
        if any("eval/dev_cka" in row for rows in task_logs.values() for row in rows):
            parts.append(figure_html(retention_figure(task_logs, f"feature retention, {task}"),
                                     f"feature retention of the {task} cells"))
    return "".join(parts) or "<p>No feature-retention measurements (training ran with --retention-examples 0).</p>"


def highlight(text: str, result: AttackResult, adversarial: bool) -> str:
    """``text`` escaped, with each changed word marked: its original (``adversarial`` False) or its substitute; a
    substitute that the model's training adversary could not have made is outlined."""
    words = split_words(text)
    slots = {change.position: f"\0{i}\0" for i, change in enumerate(result.changes)}
    marked = html.escape(replace_words(text, words, slots))
    for i, change in enumerate(result.changes):
        kind, word = ("new", change.new) if adversarial else ("old", change.old)
        title = ""
        if adversarial and change.in_training_surface is False:
            kind += " outside"
            title = ' title="outside the training adversary\'s surface"'
        marked = marked.replace(f"\0{i}\0", f'<mark class="{kind}"{title}>{html.escape(word)}</mark>')
    return marked


def _probabilities(probabilities: list[float], labels: list[str]) -> str:
    return "<br>".join(f"{html.escape(labels[i] if i < len(labels) else str(i))} {p:.3f}"
                       for i, p in enumerate(probabilities))


def example_row(result: AttackResult, labels: list[str]) -> str:
    attacked = result.text_pair if result.text_pair is not None else result.text
    premise = "" if result.text_pair is None else f"<i>{html.escape(result.text)}</i><br>"
    label = labels[result.label] if result.label < len(labels) else str(result.label)
    cells = [f'<span class="status-{result.status}">{result.status}</span>', html.escape(label),
             premise + highlight(attacked, result, adversarial=False),
             premise + highlight(attacked, result, adversarial=True),
             _probabilities(result.clean_probabilities, labels), _probabilities(result.adversarial_probabilities, labels)]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def examples_html(bench: Path, results: dict, max_examples: int) -> str:
    header = "".join(f"<th>{title}</th>" for title in
                     ("status", "label", "original", "adversarial", "p before", "p after"))
    parts = []
    split = results["settings"].get("split", "test")
    for number, cell in enumerate(results["cells"]):
        directory = bench / cell["directory"]
        id2label = read_json(directory / "config.json").get("id2label", {})
        labels = [id2label[key] for key in sorted(id2label, key=int)]
        tables = []
        for attack in results["settings"]["attacks"]:
            records = read_results(entry_examples(directory, attack, split)).values()
            sample = sorted(records, key=lambda r: (STATUS_ORDER.get(r.status, 3), r.index))[:max_examples]
            succeeded = sum(r.status == "succeeded" for r in records)
            rows = "".join(example_row(result, labels) for result in sample)
            tables.append(f"<h4>{html.escape(attack)}: {succeeded} of {len(records)} attacks succeeded; "
                          f"{len(sample)} shown</h4><table class=\"examples\"><thead><tr>{header}</tr></thead>"
                          f"<tbody>{rows}</tbody></table>")
        opened = " open" if number == 0 else ""  # the first cell's examples are shown, the others a click away
        parts.append(f"<details{opened}><summary>{html.escape(Path(cell['directory']).name)}</summary>"
                     f"{''.join(tables)}</details>")
    return "".join(parts)


def entry_examples(cell: Path, entry: str, split: str) -> Path:
    """The per-example results of a bench's ``--attacks`` entry (ATTACK or ATTACK@PROTOCOL) in a cell."""
    return examples_file(cell / attack_folder_name(entry, split), attack_entry(entry)[0])


def across_models_html(bench: Path, results: dict, max_examples: int) -> str:
    """Per task and attack, one row per example that every model of the task was attacked on (every cell attacks
    the same seeded sample), one column per model with its verdict and adversarial text; the examples on which the
    verdicts differ come first."""
    parts = []
    split = results["settings"].get("split", "test")
    for task, cells in _by_task(results).items():
        for attack in results["settings"]["attacks"]:
            found = {cell["directory"]: read_results(entry_examples(bench / cell["directory"], attack, split))
                     for cell in cells}
            found = {name: records for name, records in found.items() if records}
            if len(found) < 2:
                continue
            shared = set.intersection(*(set(records) for records in found.values()))
            verdicts = {i: [found[name][i].status for name in found] for i in shared}
            order = sorted(shared, key=lambda i: (len(set(verdicts[i])) == 1, i))[:max_examples]
            first = next(iter(found.values()))
            header = "<th>example</th>" + "".join(f"<th>{html.escape(Path(name).name)}</th>" for name in found)
            rows = []
            for i in order:
                original = first[i].text_pair if first[i].text_pair is not None else first[i].text
                row = [html.escape(original)]
                for records in found.values():
                    result = records[i]
                    attacked = result.text_pair if result.text_pair is not None else result.text
                    text = highlight(attacked, result, adversarial=True) if result.status == "succeeded" else ""
                    row.append(f'<span class="status-{result.status}">{result.status}</span>'
                               + (f"<br>{text}" if text else ""))
                rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
            parts.append(f"<h4>{html.escape(task)}, {html.escape(attack)}: {len(shared)} examples attacked on every "
                         f"model; {len(order)} shown, those the models disagree on first</h4>"
                         f'<table class="examples"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody>'
                         "</table>")
    return "".join(parts) or "<p>No example was attacked on two models or more.</p>"
