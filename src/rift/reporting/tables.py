"""The results tables of a grid, built once from results.json and written as Markdown (results.md, the terminal) or
HTML (the report): one table of the trained models, one of the attacks, each cell the mean ± std over seeds, one of
the paired differences between methods, seed by seed, and one row per cell (every seed's own numbers)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from rift.attacks.results import WORST_CASE, measures_training_adversary, with_worst_case

MODEL_COLUMNS = (("test_accuracy", "test acc", "{:.3f}"), ("dev_accuracy", "dev acc", "{:.3f}"),
                 ("retention_cka", "CKA", "{:.3f}"), ("retention_mi_nce", "MI (nats)", "{:.2f}"),
                 ("train_seconds", "train s", "{:.1f}"))
ATTACK_COLUMNS = (("clean_accuracy", "clean acc", "{:.3f}"), ("robust_accuracy", "robust acc", "{:.3f}"),
                  ("attack_success_rate", "success rate", "{:.3f}"), ("mean_perturbed_fraction", "perturbed", "{:.3f}"),
                  ("mean_queries", "queries", "{:.0f}"), ("seconds", "time s", "{:.1f}"),
                  ("outside_surface", "outside training surface", "{:.2f}"))

# (key, title, scale, digits): accuracies in points
DIFFERENCE_COLUMNS = (("test_accuracy", "test acc", 100, 1), ("dev_accuracy", "dev acc", 100, 1),
                      ("retention_cka", "CKA", 1, 3), ("retention_mi_nce", "MI (nats)", 1, 2))


UNMEASURED = {"mean": None}  # a metric that an older results.json does not have


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def format_stat(stat: dict, fmt: str) -> str:
    """``mean ± std`` over seeds, and the pooled 95% interval where there is one."""
    if stat["mean"] is None:
        return "-"
    text = fmt.format(stat["mean"])
    text = text if stat["std"] is None else f"{text} ± {fmt.format(stat['std'])}"
    return text if stat.get("interval") is None else f"{text} {format_interval(stat['interval'], fmt)}"


def format_interval(interval: list[float] | None, fmt: str = "{:.3f}") -> str:
    return "" if interval is None else "[" + ", ".join(fmt.format(bound) for bound in interval) + "]"


def attack_title(name: str) -> str:
    """Such an attack is labelled as what it is: the training adversary's own measure, not an attack users face."""
    if name == WORST_CASE:
        return "worst case"
    return f"{name} (training adversary)" if measures_training_adversary(name) else name


def discrete_first(attacks: list[str]) -> list[str]:
    return sorted(attacks, key=measures_training_adversary)


def grid_tables(results: dict) -> list[Table]:
    """The models table and the attacks table of results.json (``summary`` and ``settings``)."""
    summary, attacks = results["summary"], with_worst_case(discrete_first(results["settings"]["attacks"]))
    models = Table("Models (test accuracy of the best dev checkpoint; feature retention on dev)",
                   ["task", "method", "seeds", *(title for _, title, _ in MODEL_COLUMNS)], [])
    attacked = Table(f"Attacks ({results['settings']['split']} split; robust acc: mean ± std over seeds [95% Wilson "
                     "interval of the examples pooled over seeds]; worst case: an example counts as robust only if no "
                     "word-substitution attack broke it, over the examples every one of them attacked; an attack marked "
                     "(training adversary) is the training adversary's own measure; "
                     "outside training surface: the share of successful attacks that changed at least one word in a "
                     "way the model's training adversary could not)",
                     ["task", "method", "attack", *(title for _, title, _ in ATTACK_COLUMNS)], [])
    for row in summary:
        stats = row["metrics"]
        models.rows.append([row["task"], row["method"], str(len(row["seeds"])),
                            *(format_stat(stats[key], fmt) for key, _, fmt in MODEL_COLUMNS)])
        for name in attacks:
            attacked.rows.append([row["task"], row["method"], attack_title(name),
                                  *(format_stat(stats.get(f"{name}/{key}", UNMEASURED), fmt)
                                    for key, _, fmt in ATTACK_COLUMNS)])
    tables = [methods_table(summary, attacks, results["settings"]["split"]), models, attacked]
    if results.get("comparisons"):
        tables.append(differences_table(results["comparisons"], attacks))
    tables.append(cells_table(results["cells"], attacks))
    return tables


def methods_table(summary: list[dict], attacks: list[str], split: str) -> Table:
    """One row per method: clean accuracy, robustness (the worst case first) with intervals, the training's cost
    relative to ``standard`` of the same task in the same grid, and retention."""
    table = Table(f"Methods at a glance (clean: test accuracy; robust accuracy on the attacked {split} examples, mean "
                  "over seeds [95% Wilson interval of the examples pooled over seeds]; cost: mean training time over "
                  "standard's in this grid; CKA: feature retention on dev)",
                  ["task", "method", "seeds", "clean", *(attack_title(name) for name in attacks), "cost",
                   "CKA"], [])
    certified = any(row["metrics"].get("certified_accuracy", UNMEASURED)["mean"] is not None for row in summary)
    if certified:  # a lower bound beside the attacks' upper ones, for the smoothing defences
        table.title += ("; certified: the share of the first examples of the sample of the attacks without a "
                        "protocol that rift certify proves no substitution of those attacks' sources can break, "
                        "at its stated confidence")
        table.header.insert(4 + len(attacks), "certified")
    baseline = {row["task"]: row["metrics"]["train_seconds"]["mean"] for row in summary if row["method"] == "standard"}
    for row in summary:
        stats = row["metrics"]
        seconds, standard = stats["train_seconds"]["mean"], baseline.get(row["task"])
        cost = "-" if not seconds or not standard else f"{seconds / standard:.1f}x"
        robust = []
        for name in attacks:
            stat = stats.get(f"{name}/robust_accuracy", UNMEASURED)
            robust.append("-" if stat["mean"] is None else
                          f"{stat['mean']:.3f} {format_interval(stat.get('interval'))}".rstrip())
        if certified:
            stat = stats.get("certified_accuracy", UNMEASURED)
            robust.append("-" if stat["mean"] is None else
                          f"{stat['mean']:.3f} {format_interval(stat.get('interval'))}".rstrip())
        table.rows.append([row["task"], row["method"], str(len(row["seeds"])),
                           format_stat({"mean": stats["test_accuracy"]["mean"], "std": None}, "{:.3f}"), *robust,
                           cost, format_stat({"mean": stats["retention_cka"]["mean"], "std": None}, "{:.3f}")])
    return table


def cells_table(cells: list[dict], attacks: list[str]) -> Table:
    columns = [*MODEL_COLUMNS[:2],
               *((f"{name}/robust_accuracy", f"under {attack_title(name)}", "{:.3f}") for name in attacks),
               *([("certified_accuracy", "certified", "{:.3f}")] if any(c.get("certified_accuracy") is not None
                                                                      for c in cells) else []),
               *MODEL_COLUMNS[2:]]
    table = Table("Cells, one per trained model (accuracy under each attack: robust accuracy on the attacked sample "
                  "[95% Wilson interval])", ["task", "method", "seed", *(title for _, title, _ in columns)], [])
    for cell in cells:
        row = []
        for key, _, fmt in columns:
            text = "-" if cell.get(key) is None else fmt.format(cell[key])
            interval = cell.get(f"{key}_interval")
            row.append(text if interval is None else f"{text} {format_interval(interval, fmt)}")
        table.rows.append([cell["task"], cell["method"], str(cell["seed"]), *row])
    return table


def format_difference(stat: dict | None, scale: float, digits: int) -> str:
    """``mean [seed-level 95% interval] (per seed)``, scaled (accuracies in points); one seed: its value alone."""
    if stat is None:
        return "-"
    text = f"{stat['mean'] * scale:+.{digits}f}"
    if stat.get("interval") is not None:  # comparisons written before seed-level intervals have the std only
        text += " [" + ", ".join(f"{bound * scale:+.{digits}f}" for bound in stat["interval"]) + "]"
    elif stat["std"] is not None:
        text += f" ± {stat['std'] * scale:.{digits}f}"
    return text + " (" + ", ".join(f"{value * scale:+.{digits}f}" for value in stat["values"]) + ")"


def differences_table(comparisons: list[dict], attacks: list[str]) -> Table:
    columns = [*((f"{name}/robust_accuracy", f"under {attack_title(name)}", 100, 1) for name in attacks),
               *DIFFERENCE_COLUMNS]
    table = Table("Paired differences, method − baseline of the same seed: mean over seeds [95% t interval over "
                  "seeds, which counts both seed and example variance] (per seed), accuracies in points; held by "
                  "one only: attacked examples (pooled over seeds) that only the method : only the baseline still "
                  "classifies correctly, exact McNemar p, and the difference of robust accuracy with Newcombe's "
                  "paired 95% interval, in points (it treats the pooled examples as independent and ignores the "
                  "seeds' spread: narrower than the seed-level interval)",
                  ["task", "method − baseline", "seeds", *(title for _, title, _, _ in columns),
                   *(f"held by one only ({attack_title(name)})" for name in attacks)], [])
    for row in comparisons:
        held = [row["held_only"].get(name) for name in attacks]
        table.rows.append([row["task"], f"{row['method']} − {row['baseline']}", str(len(row["seeds"])),
                           *(format_difference(row["differences"].get(key), scale, digits)
                             for key, _, scale, digits in columns),
                           *("-" if h is None else format_held(h) for h in held)])
    return table


def format_held(held: dict) -> str:
    text = f"{held['method']} : {held['baseline']} (p {held['p_value']:.2g})"
    if held.get("difference_interval") is None:  # comparisons written before intervals were recorded
        return text
    low, high = (100 * bound for bound in held["difference_interval"])
    return f"{text}; {100 * held['difference']:+.1f} [{low:+.1f}, {high:+.1f}]"


def to_markdown(tables: list[Table]) -> str:
    blocks = []
    for table in tables:
        lines = [f"### {table.title}", "", "| " + " | ".join(table.header) + " |",
                 "|" + "|".join("---" for _ in table.header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def to_html(tables: list[Table]) -> str:
    blocks = []
    for table in tables:
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
        blocks.append(f'<table class="results"><caption>{html.escape(table.title)}</caption>'
                      f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(blocks)
