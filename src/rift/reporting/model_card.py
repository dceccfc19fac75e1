"""The model card (``README.md`` in the Hub's format) of every checkpoint rift trains.

``rift train`` writes it when the run finishes; ``rift attack`` (and so ``rift bench``) records each attack's summary
in the checkpoint's ``robustness.json`` and writes the card again. The YAML metadata holds a ``model-index`` with the
clean test accuracy and the accuracy under each attack, with its settings and 95% interval, so that the Hub (and
``huggingface_hub.ModelCard.load``) reads them; the text says in words how the model was trained.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from rift.attacks.results import WORST_CASE
from rift.files import write_atomic
from rift.registry import load, names
from rift.run_folder import CARD_FILE, CONFIG_FILE, METRICS_FILE, ROBUSTNESS_FILE

BASE_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
# the settings of every attack that its entry keeps, before the attack's own options
ATTACK_SETTINGS = ("split", "num_examples", "synonyms", "max_substitutes", "max_changed_share", "query_budget",
                   "protocol")


def _read(path: Path) -> dict:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    return (yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)) or {}


def record_attacks(model_dir: Path, results: dict[str, Any], settings: dict[str, Any]) -> None:
    """Keep each attack's summary with the settings that produced it in ``robustness.json``; one entry per attack,
    split, sample size and protocol (a later run of the same replaces it), then write the card again."""
    path = model_dir / ROBUSTNESS_FILE
    recorded = _read(path).get("attacks", [])
    worst = results.get("worst_case")
    summaries = results["attacks"] | ({WORST_CASE: worst} if worst else {})
    for name, summary in summaries.items():
        entry = {"attack": name} | {k: settings.get(k) for k in _attack_settings(name)} | {
            "synonyms": summary.get("synonyms", settings.get("synonyms")),
            "num_examples": summary["num_examples"], "task": results["task"],
            "summary": {k: summary.get(k) for k in ("clean_accuracy", "robust_accuracy", "robust_accuracy_interval",
                                                    "attack_success_rate", "mean_queries", "num_robust")}}
        if name == WORST_CASE:
            entry["attacks"] = summary["attacks"]
            entry["synonyms"] = ",".join(sorted({results["attacks"].get(attack, {}).get("synonyms")
                                                 or settings.get("synonyms") for attack in summary["attacks"]}))
        key = lambda e: (e["attack"], e["split"], e["num_examples"], e.get("protocol"), e.get("synonyms"))  # noqa: E731
        recorded = [e for e in recorded if key(e) != key(entry)] + [entry]
    # the worst cases first: the measure to judge a model by
    recorded.sort(key=lambda e: e["attack"] != WORST_CASE)
    write_atomic(path, json.dumps(_read(path) | {"attacks": recorded}, indent=2))
    write_model_card(model_dir)


def record_certification(model_dir: Path, results: dict[str, Any]) -> None:
    """Keep a ``rift certify`` summary in ``robustness.json``; one entry per smoothing, split, sample size and
    confidence (a later run of the same replaces it), then write the card again."""
    path = model_dir / ROBUSTNESS_FILE
    entry = {k: results[k] for k in ("task", "split", "num_examples", "alpha", "selection_samples", "certify_samples",
                                     "synonyms")}
    entry |= {"smoothing": results["smoothing"]["kind"],
              "summary": {k: results.get(k) for k in ("certified_accuracy", "certified_accuracy_interval",
                                                      "clean_accuracy", "abstained", "certified_accuracy_at_radius")}}
    key = lambda e: (e["smoothing"], e["split"], e["num_examples"], e["alpha"], e["synonyms"],  # noqa: E731
                     e["selection_samples"], e["certify_samples"])
    recorded = [e for e in _read(path).get("certified", []) if key(e) != key(entry)] + [entry]
    write_atomic(path, json.dumps(_read(path) | {"certified": recorded}, indent=2))
    write_model_card(model_dir)


def _certified_title(entry: dict) -> str:
    low, high = entry["summary"]["certified_accuracy_interval"]
    return (f"certified accuracy ({entry['smoothing']}, {entry['split']}, n={entry['num_examples']}, against "
            f"{entry['synonyms']} substitutions, confidence {1 - entry['alpha']:.2f}, 95% [{low:.3f}, {high:.3f}])")


def _attack_settings(name: str) -> tuple[str, ...]:
    attack = _component("attack", name)
    return ATTACK_SETTINGS + (tuple(f.name for f in dataclasses.fields(attack.Options)) if attack else ())


def _attack_title(entry: dict) -> str:
    if entry["attack"] == WORST_CASE:
        name = "the worst case of " + ", ".join(_attack_name(attack) for attack in entry["attacks"])
    else:
        name = _attack_name(entry["attack"])
    low, high = entry["summary"]["robust_accuracy_interval"] or (None, None)
    interval = f", 95% [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"accuracy under {name} ({entry['split']}, n={entry['num_examples']}{interval})"


def _attack_name(name: str) -> str:
    attack = _component("attack", name)
    return (attack.title if attack else None) or name


def write_model_card(model_dir: Path) -> Path:
    """Write ``model_dir/README.md`` from the run's configuration, metrics and recorded attacks."""
    config = _read(model_dir / CONFIG_FILE)
    metrics = _read(model_dir / METRICS_FILE)
    attacks = _read(model_dir / ROBUSTNESS_FILE).get("attacks", [])
    certified = _read(model_dir / ROBUSTNESS_FILE).get("certified", [])
    task = _component("task", config.get("task", "file"))
    dataset_name = (task.title if task else None) or config.get("task", "file")
    dataset_id = (task.hub_dataset if task else None) or dataset_name
    model = config.get("model", "")
    base = BASE_MODELS.get(model, model if model and not Path(model).exists() else None)
    method = config.get("method", "standard")
    results = []
    if metrics.get("test_accuracy") is not None:
        results.append(EvalResult(task_type="text-classification", dataset_type=dataset_id, dataset_name=dataset_name,
                                  dataset_split="test", metric_type="accuracy",
                                  metric_value=round(metrics["test_accuracy"], 4),
                                  metric_name="clean accuracy (test)"))
    for entry in attacks:
        summary = entry["summary"]
        if summary.get("robust_accuracy") is None:
            continue
        args = {k: entry[k] for k in _attack_settings(entry["attack"]) if entry.get(k) is not None}
        args["interval_95"] = [round(x, 4) for x in summary["robust_accuracy_interval"]]
        results.append(EvalResult(task_type="text-classification", dataset_type=dataset_id, dataset_name=dataset_name,
                                  dataset_split=entry["split"], metric_type="accuracy",
                                  metric_value=round(summary["robust_accuracy"], 4), metric_name=_attack_title(entry),
                                  metric_args=args))
    for entry in certified:
        results.append(EvalResult(task_type="text-classification", dataset_type=dataset_id, dataset_name=dataset_name,
                                  dataset_split=entry["split"], metric_type="accuracy",
                                  metric_value=round(entry["summary"]["certified_accuracy"], 4),
                                  metric_name=_certified_title(entry)))
    data = ModelCardData(
        library_name="transformers", pipeline_tag="text-classification", base_model=base,
        datasets=[task.hub_dataset] if task and task.hub_dataset else None,
        tags=list(dict.fromkeys(["rift", "adversarial-robustness", "text-classification", method])),
        model_name=model_dir.name, eval_results=results or None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(model_dir.name, config, metrics, attacks, certified, base)}")
    path = model_dir / CARD_FILE
    write_atomic(path, str(card))
    return path


def _component(kind: str, name: str) -> type | None:
    """The registered class that a card describes; None for a name not registered here (a card written elsewhere)."""
    return load(kind, name) if name in names(kind) else None


def _body(name: str, config: dict, metrics: dict, attacks: list[dict], certified: list[dict], base: str | None) -> str:
    method = config.get("method", "standard")
    task = _component("task", config.get("task", "file"))
    trained_on = (task.title if task else None) or config.get("task", "file")
    if task and task.description:
        trained_on += f" ({task.description})"
    count = metrics.get("num_train_examples")
    objective = _component("objective", method)
    adversarial = objective is not None and objective.uses_adversary
    how = (objective.description if objective is not None else "") or method
    if adversarial:
        adversary = config.get("adversary", "ascc")
        described = _component("adversary", adversary)
        how += f", against the {adversary} training adversary ({described.description if described else adversary})"
    lines = [
        f"# {name}", "",
        f"A text classifier fine-tuned from {f'`{base}`' if base else 'a pre-trained encoder'} on {trained_on}"
        + (f" ({count} training examples, {metrics.get('epochs')} epochs)" if count else "")
        + f" with rift's `{method}` method: {how}.", "",
        "## Results", "",
        "| measure | value |", "|---|---|",
    ]
    for key, title in (("dev_accuracy", "clean accuracy (dev, the checkpoint chosen on it)"),
                       ("test_accuracy", "clean accuracy (test)")):
        if metrics.get(key) is not None:
            lines.append(f"| {title} | {metrics[key]:.4f} |")
    for entry in attacks:
        if entry["summary"].get("robust_accuracy") is not None:
            lines.append(f"| {_attack_title(entry)} | {entry['summary']['robust_accuracy']:.4f} |")
    for entry in certified:
        lines.append(f"| {_certified_title(entry)} | {entry['summary']['certified_accuracy']:.4f} |")
    if not attacks:
        lines += ["", "No attack has been run on this checkpoint yet: `rift attack --model THIS_FOLDER ...` adds its "
                      "results here."]
    if certified:
        lines += ["", "Certified accuracy (`rift certify`): the share of the examples whose smoothed prediction is "
                      "correct and provably unchanged by every substitution of the named source (its substitutes for "
                      "every word but stop words), with the stated confidence: a lower bound beside the upper one of "
                      "attacks on the same source."]
    lines += ["", "Robust accuracy: the share of the attacked examples that are classified correctly and that the "
                  "attack did not break; under the worst case of several attacks, that none of them broke (over the "
                  "examples every one attacked); intervals are 95% Wilson intervals.", ""]
    # the options of the method and of its adversary, where it has one: what the model's training read
    components = [objective, described] if adversarial else [objective]
    own = [f.name for component in components if component is not None for f in dataclasses.fields(component.Options)]
    shown = ("method", *(["adversary"] if adversarial else []), "model", "task", "max_train_examples", "epochs",
             "batch_size", "learning_rate", "max_length", *dict.fromkeys(own), "class_balanced", "seed")
    lines += ["## Training configuration", "", "| option | value |", "|---|---|"]
    lines += [f"| `{key}` | {config[key]} |" for key in shown if config.get(key) is not None]
    lines += ["", f"Every option is in `{CONFIG_FILE}`: `rift train --config {CONFIG_FILE} "
                  "--output-dir NEW_FOLDER` trains the same model again.", "",
              "## Use", "", "```python", "from transformers import pipeline",
              f'classify = pipeline("text-classification", model="{name}")', "```", ""]
    return "\n".join(lines)
