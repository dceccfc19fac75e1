"""rift's PWWS beside TextAttack's stock ``pwws`` recipe: the same model, the same examples, side by side in one run.

    bash benchmarks/setup_textattack.sh        # once: .venv-textattack with TextAttack 0.3.11 and transformers<5
    .venv/bin/python benchmarks/peer_textattack.py --model runs/sst2-standard --num-examples 100

TextAttack runs in its own environment (it needs transformers<5), as a child process started by this script; rift
runs in this process at the same time. Each gets one thread, so on a 2-core machine each has a core of its own and
both see the same background load. Both attack the same seeded sample of the split (``rift attack``'s sampling) with
WordNet synonyms and NLTK's English stop words, under TextAttack's goal (the prediction leaves the label).

- TextAttack: ``PWWSRen2019`` unchanged (WordNet swap, repeat and stop-word constraints, greedy search by weighted
  saliency), on ``HuggingFaceModelWrapper``. Its tokenizer is given rift's maximum length (128) as
  ``model_max_length``: the wrapper pads every input to that length, and the checkpoint's 512 would make TextAttack
  4x slower for nothing.
- rift: ``rift attack --attack pwws --synonyms wordnet`` through the same library call (``run_attack``).

NLTK's WordNet is built from Debian's WordNet 3.0 files (the same database rift reads), so nothing is downloaded.
The script prints robust accuracy with 95% Wilson intervals, the paired difference (Newcombe's interval), queries,
wall time and their ratios, how the candidate sets of the two WordNet sources compare on the attacked words, and
writes everything, with every adversarial example of both, to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# WordNet 3.0's lexicographer files in number order (lexnames(5)): NLTK reads this file, Debian does not ship it
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
REPO = Path(__file__).resolve().parent.parent


def build_nltk_data(root: Path, wordnet_dir: Path, stopwords_file: Path) -> None:
    """NLTK's data folder from WordNet's database files and the stop-word list rift uses. Files are copied: NLTK
    refuses symbolic links that lead outside its root."""
    wordnet = root / "corpora" / "wordnet"
    wordnet.mkdir(parents=True)
    needed = [f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")]
    needed += [f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")] + ["index.sense"]
    missing = [name for name in needed if not (wordnet_dir / name).is_file()]
    if missing:
        sys.exit(f"peer_textattack: {wordnet_dir} lacks {', '.join(missing)} (apt-get install wordnet-base "
                 "wordnet-sense-index, or run benchmarks/setup_textattack.sh)")
    for name in needed:
        shutil.copyfile(wordnet_dir / name, wordnet / name)
    lines = [f"{i:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES)]
    (wordnet / "lexnames").write_text("".join(lines))
    (root / "corpora" / "stopwords").mkdir()
    shutil.copyfile(stopwords_file, root / "corpora" / "stopwords" / "english")


# ----------------------------------------------------------------------------------------------------------------
# TextAttack's side: runs in .venv-textattack and imports neither rift nor anything of transformers 5


def textattack_worker(work: Path) -> None:
    job = json.loads((work / "job.json").read_text())
    import torch

    torch.set_num_threads(1)
    import textattack
    import transformers
    from textattack.attack_recipes import PWWSRen2019
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult
    from textattack.models.wrappers import HuggingFaceModelWrapper

    model = transformers.AutoModelForSequenceClassification.from_pretrained(job["model"]).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(job["model"])
    tokenizer.model_max_length = job["max_length"]
    attack = PWWSRen2019.build(HuggingFaceModelWrapper(model, tokenizer))

    records, start = [], time.perf_counter()
    for example in job["examples"]:
        began = time.perf_counter()
        result = attack.attack(example["text"], example["label"])
        status = ("skipped" if isinstance(result, SkippedAttackResult)
                  else "failed" if isinstance(result, FailedAttackResult) else "succeeded")
        original, perturbed = result.original_result.attacked_text, result.perturbed_result.attacked_text
        changed = sorted(original.all_words_diff(perturbed)) if status != "skipped" else []
        records.append({
            "index": example["index"], "status": status, "queries": result.perturbed_result.num_queries,
            "adversarial_text": perturbed.text, "num_words": len(original.words),
            "changes": [[i, original.words[i], perturbed.words[i]] for i in changed],
            "seconds": time.perf_counter() - began,
        })
    seconds = time.perf_counter() - start

    stopwords = next(c.stopwords for c in attack.pre_transformation_constraints if hasattr(c, "stopwords"))
    candidates = {word: sorted(attack.transformation._get_replacement_words(word))
                  for word in job["words"] if word.lower() not in stopwords}
    candidates = {word: found for word, found in candidates.items() if found}
    (work / "textattack.json").write_text(json.dumps({
        "version": textattack.__version__ if hasattr(textattack, "__version__") else "0.3.11",
        "transformers": transformers.__version__, "seconds": seconds, "results": records, "candidates": candidates,
    }))


# ----------------------------------------------------------------------------------------------------------------
# rift's side, and the comparison


def compare_candidates(rift_candidates: dict[str, list[str]], peer: dict[str, list[str]], base_forms) -> dict:
    """How the two WordNet sources differ on the words both may change, compared case-insensitively."""
    words = sorted(rift_candidates.keys() & peer.keys())
    same = 0
    only_peer = {"base form of the word": 0, "not a plain word (hyphen, apostrophe)": 0, "other": 0}
    only_rift = 0
    samples: dict[str, list[str]] = {key: [] for key in (*only_peer, "only rift")}
    for word in words:
        mine = {c.lower() for c in rift_candidates[word]}
        theirs = {c.lower() for c in peer[word] if c.lower() != word.lower()}
        same += mine == theirs
        for candidate in sorted(theirs - mine):
            kind = ("base form of the word" if candidate in base_forms(word)
                    else "not a plain word (hyphen, apostrophe)" if not candidate.isalpha() else "other")
            only_peer[kind] += 1
            if len(samples[kind]) < 6:
                samples[kind].append(f"{word} -> {candidate}")
        for candidate in sorted(mine - theirs):
            only_rift += 1
            if len(samples["only rift"]) < 6:
                samples["only rift"].append(f"{word} -> {candidate}")
    return {
        "words": len(words), "identical_sets": same,
        "rift_candidates": sum(len(rift_candidates[w]) for w in words),
        "textattack_candidates": sum(len({c.lower() for c in peer[w]} - {w.lower()}) for w in words),
        "only_textattack": only_peer, "only_rift": only_rift, "samples": samples,
        "words_only_rift_may_change": sorted(rift_candidates.keys() - peer.keys())[:20],
        "words_only_textattack_may_change": sorted(peer.keys() - rift_candidates.keys())[:20],
    }


def summary_of(records: list[dict]) -> dict:
    from rift.statistics import wilson_interval

    n = len(records)
    attacked = [r for r in records if r["status"] != "skipped"]
    robust = sum(r["status"] == "failed" for r in records)
    return {
        "num_examples": n, "clean_accuracy": len(attacked) / n,
        "robust_accuracy": robust / n, "robust_accuracy_interval": wilson_interval(robust, n),
        "attack_success_rate": (len(attacked) - robust) / len(attacked) if attacked else None,
        "mean_queries": sum(r["queries"] for r in attacked) / len(attacked) if attacked else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a classifier folder written by rift train (required)")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--num-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (as rift attack --seed)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64, help="rift's inputs per model call")
    parser.add_argument("--data-dir")
    parser.add_argument("--peer-python", default=str(REPO / ".venv-textattack" / "bin" / "python"))
    parser.add_argument("--output-dir", default="runs/peer-textattack")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # TextAttack's side, in its own environment
    args = parser.parse_args()
    if args.worker:
        textattack_worker(Path(args.worker))
        return
    if not args.model:
        parser.error("--model is required")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from rift.attacks.registry import build_attack
    from rift.data import load_task, resolve_data_dir
    from rift.statistics import paired_difference_interval
    from rift.evaluation.robustness import attack_sample, read_results, run_attack
    from rift.models import load_classifier, load_tokenizer
    from rift.substitutions import build_substitution_source
    from rift.substitutions.wordnet import default_wordnet_dir
    from rift.text.words import split_words

    if not Path(args.peer_python).exists():
        sys.exit(f"peer_textattack: {args.peer_python} not found: run bash benchmarks/setup_textattack.sh first")
    torch.set_num_threads(1)
    data_dir = resolve_data_dir(args.data_dir)
    task = load_task(args.task, data_dir, seed=args.seed, log=lambda _: None)
    split = task.splits[args.split]
    indices = attack_sample(len(split), args.num_examples, args.seed)
    examples = [split[i] for i in indices]
    if any(e.text_pair is not None for e in examples):
        sys.exit("peer_textattack: single-text tasks only")
    model = load_classifier(args.model).eval()
    tokenizer = load_tokenizer(args.model)
    source = build_substitution_source("wordnet", data_dir)
    words = sorted({w.text for e in examples for w in split_words(e.text)})

    output = Path(args.output_dir)
    if output.exists():
        shutil.rmtree(output)
    (output / "rift").mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="peer-textattack-") as scratch:
        work = Path(scratch)
        build_nltk_data(work / "nltk_data", default_wordnet_dir(), data_dir / "stopwords" / "english.txt")
        (work / "cache").mkdir()
        (work / "cache" / "post_install_check_3").touch()  # TextAttack's first import would download NLTK data
        (work / "job.json").write_text(json.dumps({
            "model": str(Path(args.model).resolve()), "max_length": args.max_length, "words": words,
            "examples": [{"index": i, "text": e.text, "label": e.label} for i, e in zip(indices, examples)],
        }))
        env = {**os.environ, "NLTK_DATA": str(work / "nltk_data"), "TA_CACHE_DIR": str(work / "cache"),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
        env.pop("PYTHONPATH", None)
        log = open(output / "textattack.log", "w")
        peer = subprocess.Popen([args.peer_python, __file__, "--worker", str(work)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        print(f"TextAttack started (pid {peer.pid}); rift's PWWS on {len(examples)} examples meanwhile", flush=True)

        attack = build_attack("pwws", model, tokenizer, source, batch_size=args.batch_size,
                              max_length=args.max_length, seed=args.seed)
        start = time.perf_counter()
        run_attack(attack, split, indices, output / "rift", show_progress=False)
        rift_seconds = time.perf_counter() - start
        print(f"rift finished in {rift_seconds:.1f} s; waiting for TextAttack", flush=True)
        if peer.wait() != 0:
            log.close()
            sys.exit(f"peer_textattack: TextAttack failed; see {output / 'textattack.log'}:\n"
                     + (output / "textattack.log").read_text()[-3000:])
        log.close()
        peer_output = json.loads((work / "textattack.json").read_text())

    rift_results = read_results(output / "rift" / "examples_pwws.jsonl")
    rift_records = [{"index": i, "status": rift_results[i].status, "queries": rift_results[i].queries}
                    for i in indices]
    peer_records = peer_output["results"]
    rift_candidates = {w: source.substitutes([w], 0) for w in words if source.substitutes([w], 0)}
    wordnet = source.base._wordnet
    base_forms = lambda word: {b for pos in "nvar" for b in wordnet.base_forms(word.lower(), pos)}  # noqa: E731

    held_rift = {r["index"]: r["status"] == "failed" for r in rift_records}
    held_peer = {r["index"]: r["status"] == "failed" for r in peer_records}
    only_rift_held = sum(held_rift[i] and not held_peer[i] for i in indices)
    only_peer_held = sum(held_peer[i] and not held_rift[i] for i in indices)
    both_held = sum(held_rift[i] and held_peer[i] for i in indices)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model, "task": args.task, "split": args.split, "seed": args.seed, "indices": indices,
        "textattack": {**summary_of(peer_records), "seconds": peer_output["seconds"],
                       "versions": {"textattack": peer_output["version"], "transformers": peer_output["transformers"]}},
        "rift": {**summary_of(rift_records), "seconds": rift_seconds},
        "paired": {"both_held": both_held, "only_rift_held": only_rift_held, "only_textattack_held": only_peer_held,
                   "robust_accuracy_difference": (only_rift_held - only_peer_held) / len(indices),
                   "difference_interval": paired_difference_interval(both_held, only_rift_held, only_peer_held,
                                                                     len(indices))},
        "candidates": compare_candidates(rift_candidates, peer_output["candidates"], base_forms),
    }
    report["wall_time_ratio"] = rift_seconds / peer_output["seconds"]
    report["query_ratio"] = report["rift"]["mean_queries"] / report["textattack"]["mean_queries"]
    (output / "textattack_examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in peer_records))
    (output / "summary.json").write_text(json.dumps(report, indent=2))
    print_report(report)
    print(f"summary and every adversarial example of both in {output}")


def print_report(report: dict) -> None:
    print(f"\n{'':<12}{'clean acc':>10}{'robust acc':>12}{'95% interval':>16}{'success':>9}{'queries':>9}"
          f"{'seconds':>9}")
    for name in ("textattack", "rift"):
        s = report[name]
        low, high = s["robust_accuracy_interval"]
        print(f"{name:<12}{s['clean_accuracy']:>10.3f}{s['robust_accuracy']:>12.3f}{f'[{low:.3f}, {high:.3f}]':>16}"
              f"{s['attack_success_rate']:>9.3f}{s['mean_queries']:>9.1f}{s['seconds']:>9.1f}")
    p = report["paired"]
    low, high = p["difference_interval"]
    print(f"\nrift - textattack robust accuracy: {p['robust_accuracy_difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
          f"(held by rift only: {p['only_rift_held']}, by TextAttack only: {p['only_textattack_held']})")
    print(f"wall time rift / textattack: {report['wall_time_ratio']:.2f}x; queries: {report['query_ratio']:.2f}x")
    c = report["candidates"]
    print(f"\nWordNet candidates on {c['words']} words both may change: identical sets for {c['identical_sets']}; "
          f"{c['rift_candidates']} candidates in rift, {c['textattack_candidates']} in TextAttack")
    print(f"  only in TextAttack: {c['only_textattack']}; only in rift: {c['only_rift']}")
    for kind, samples in c["samples"].items():
        if samples:
            print(f"  {kind}: {', '.join(samples)}")


if __name__ == "__main__":
    main()
