"""``rift certify``: the certified accuracy of a smoothed classifier (SAFER's or RanMASK's vote, rift.prediction) on
a seeded sample of a split, beside the vote's own clean accuracy.

Per example, as RanMASK's certify.py and Cohen et al.'s CERTIFY do: ``selection_samples`` copies select a class c;
``certify_samples`` fresh copies give a one-sided Clopper-Pearson lower bound on c's share; the certificate
(rift.evaluation.certification) says whether c holds against every change of its threat model (SAFER) or against
up to how many changed words (RanMASK). The vote's clean prediction is the class most voted for among the
model's recorded number of copies (those that rift attack sees); it abstains when a two-sided binomial test at
``alpha`` cannot tell the top two classes apart, and an abstention counts as wrong.

An example counts as certified when c is its label, the vote predicts it too, and the certificate covers every
change the attacks can make with ``--synonyms`` (their substitution source, all substitutes of every word but stop
words, as ``rift attack`` takes them): for SAFER any number of those substitutions at once, for RanMASK a radius
that reaches the number of the text's words that source can change. So the
certified accuracy is a lower bound beside the attacks' upper one, on the same threat model. The certificate is a
statement about the vote's limit over infinitely many copies, with confidence 1 - alpha; the deployed vote over
its recorded number of copies estimates that limit.

Each example's record is appended to certified.jsonl once it is certified, so that a killed run continues where it
stopped; the folder's settings are saved beside it, and a run with other settings is refused.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from rift.arguments import CertifyArguments
from rift.config import changed_options
from rift.data import resolve_data_dir
from rift.errors import RiftError
from rift.evaluation.attack_run import scored_classifier
from rift.evaluation.certification import ranmask_radius, safer_certified
from rift.evaluation.robustness import attack_sample, drop_incomplete_last_line
from rift.files import write_atomic
from rift.inputs import check_inputs, fingerprints, record_inputs, recording_reads, weights_read_before
from rift.prediction import MaskVote, SubstitutionVote, VotePredictor, recorded_prediction
from rift.registry import load
from rift.run_folder import CERTIFIED_FILE, CERTIFY_CONFIG_FILE, CERTIFY_RESULTS_FILE
from rift.smoothing import kept_words
from rift.statistics import clopper_pearson_lower, vote_test_pvalue, wilson_interval
from rift.substitutions import SubstitutionSource, build_substitution_source
from rift.substitutions.perturbation_sets import PerturbationSets
from rift.text.words import PUNCTUATION, split_words

# the references' estimation samples: SAFER's evaluation.py (its default N), RanMASK's certify ensemble
CERTIFY_SAMPLES = {"safer": 2000, "ranmask": 5000}
# options that may change between an interrupted run and its continuation (records are keyed by example index)
CERTIFY_RESUMABLE_CHANGES = {"batch_size", "num_threads", "config", "num_examples", "output_dir", "allow_changed_data"}


def smoothing_of(model, args: CertifyArguments, log) -> SubstitutionVote | MaskVote:
    """The vote the checkpoint records; ``--smoothing`` names one for a checkpoint that records none (with the
    defence's defaults, and a warning), never another than the recorded one."""
    recorded = recorded_prediction(model)
    if recorded is not None and not isinstance(recorded, (SubstitutionVote, MaskVote)):
        raise RiftError(f"{args.model} predicts by a {recorded.kind} average, not by a vote over copies: rift certify "
                        "certifies safer and ranmask")
    if recorded is not None:
        if args.smoothing not in (None, recorded.kind):
            raise RiftError(f"{args.model} was trained for {recorded.kind}; drop --smoothing {args.smoothing}")
        return recorded
    if args.smoothing is None:
        raise RiftError(f"{args.model} records no smoothing (it was not trained with safer or ranmask); name one "
                        "with --smoothing to certify it anyway")
    log(f"warning: {args.model} was not trained for {args.smoothing}; its certificate is valid, but a model not "
        "trained on such copies is rarely certified")
    defaults = {f.name: f.default for f in dataclasses.fields(load("objective", args.smoothing).Options)}
    if args.smoothing == "safer":
        return SubstitutionVote(samples=defaults["safer_samples"], set_size=defaults["safer_set_size"],
                                synonyms=defaults["synonyms"], max_substitutes=defaults["max_substitutes"],
                                seed=args.seed)
    return MaskVote(samples=defaults["ranmask_samples"], mask_rate=defaults["ranmask_inference_rate"], seed=args.seed)


def check_certify_output(args: CertifyArguments, output_dir: Path) -> None:
    saved_path = output_dir / CERTIFY_CONFIG_FILE
    changed = changed_options(args, saved_path, CERTIFY_RESUMABLE_CHANGES)
    if changed == ["model"] and weights_read_before(args.model, output_dir):
        changed = []  # the same weights at another path: the certificates go on
    if saved_path.exists() and changed:
        raise RiftError(f"{output_dir} holds certificates of other settings ({', '.join(changed)}); choose another "
                        "--output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(saved_path, yaml.safe_dump(dataclasses.asdict(args), sort_keys=False))


def read_certified(path: Path) -> dict[int, dict]:
    """The records already written, by example index (a last line cut short by a kill is dropped first)."""
    drop_incomplete_last_line(path)
    if not path.exists():
        return {}
    return {record["index"]: record for record in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


class Certifier:
    """Certifies one example at a time with the vote ``predictor``."""

    def __init__(self, predictor: VotePredictor, args: CertifyArguments, certify_samples: int,
                 sets: PerturbationSets | None, attacks_source: SubstitutionSource | None):
        self.predictor, self.args, self.certify_samples, self.sets = predictor, args, certify_samples, sets
        self.attacks_source = attacks_source
        # the highest bound any estimate can give: a unanimous one
        self.best_bound = clopper_pearson_lower(certify_samples, certify_samples, args.alpha)

    def certify(self, index: int, text: str, pair: str | None, label: int) -> dict:
        started, in_model = time.perf_counter(), self.predictor.model_seconds
        predictor, args = self.predictor, self.args
        # draw 0 is the prediction attacks see; the selection and the estimate take fresh copies of their own
        votes = predictor.votes(text, pair, predictor.samples, draw=0)
        top, runner_up = torch.topk(votes, 2).values.tolist() if len(votes) > 1 else (int(votes[0]), 0)
        abstains = vote_test_pvalue(top, runner_up) > args.alpha
        predicted = None if abstains else int(votes.argmax())
        record = {"index": index, "label": label, "predicted": predicted, "votes": votes.tolist()}
        words = [word.text for word in split_words(text if pair is None else pair)]
        if self.sets is not None:
            overlap = 1.0
            for position in range(len(words)):
                overlap *= self.sets.position_overlap(words, position, self.attacks_source)
            record["overlap"] = overlap
            reachable = safer_certified(self.best_bound, [overlap])  # else too small an overlap for any estimate
        else:
            num_words = sum(1 for word in words if not PUNCTUATION.fullmatch(word))
            # the attacks change at most every word their source has substitutes for
            attackable = sum(1 for position in range(len(words)) if self.attacks_source.substitutes(words, position))
            record |= {"words": num_words, "kept": kept_words(num_words, predictor.prediction.mask_rate),
                       "attackable_words": attackable}
            reachable = True  # the radii are reported whatever the attacks' reach
        # only what the deployed vote gets right can count as certified (the certificate is on the vote's limit), so
        # the selection and the estimate, most of the cost, are drawn only for those, and only where they can count
        selected = p_lower = record["selected_share"] = None
        if predicted == label and reachable:
            selected = int(predictor.votes(text, pair, args.selection_samples, draw=1).argmax())
        if selected == label:
            estimate = predictor.votes(text, pair, self.certify_samples, draw=2)
            p_lower = clopper_pearson_lower(int(estimate[selected]), self.certify_samples, args.alpha)
            record["selected_share"] = int(estimate[selected]) / self.certify_samples
        record |= {"selected": selected, "p_lower": p_lower}
        if self.sets is not None:
            record["certified"] = p_lower is not None and safer_certified(p_lower, [overlap])
        else:
            radius = None if p_lower is None else ranmask_radius(p_lower, record["words"], record["kept"])
            record |= {"radius": radius, "certified": radius is not None and radius >= record["attackable_words"]}
        return record | {"seconds": time.perf_counter() - started, "model_seconds": predictor.model_seconds - in_model}


def summarize(records: list[dict], kind: str) -> dict:
    n = len(records)
    correct = sum(r["predicted"] == r["label"] for r in records)
    certified = sum(r["certified"] for r in records)
    summary = {"num_examples": n, "clean_accuracy": correct / n, "clean_accuracy_interval": wilson_interval(correct, n),
               "abstained": sum(r["predicted"] is None for r in records),
               "certified_accuracy": certified / n, "certified_accuracy_interval": wilson_interval(certified, n)}
    if kind == "ranmask":  # the share certified against any change of up to d words, for every d reached
        largest = max((r["radius"] for r in records if r["radius"] is not None), default=-1)
        summary["certified_accuracy_at_radius"] = {
            str(d): sum(r["radius"] is not None and r["radius"] >= d for r in records) / n for d in range(largest + 1)}
        summary["radii"] = {str(d): sum(r["radius"] == d for r in records) for d in range(largest + 1)}
    return summary


def run_certify(args: CertifyArguments) -> dict:
    """Certify every example of the sample not yet certified in ``args.output_dir``; the content of results.json."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    with recording_reads() as read:
        task = args.load_task(log=log, scored_split=args.split)
        model, tokenizer = scored_classifier(args, task)
        model.eval()
        smoothing = smoothing_of(model, args, log)
        source = sets = None
        if isinstance(smoothing, SubstitutionVote):
            source = build_substitution_source(smoothing.synonyms, resolve_data_dir(args.data_dir),
                                               max_substitutes=smoothing.max_substitutes)
            sets = PerturbationSets(source, smoothing.set_size)
        # every substitute the attacks may use, as rift attack takes them: all of them, stop words excluded
        attacks_source = build_substitution_source(args.synonyms, resolve_data_dir(args.data_dir))
    predictor = VotePredictor(model, tokenizer, smoothing, args.max_length, source, args.batch_size)
    examples = task.splits[args.split]
    if not examples:
        raise RiftError(f"the {args.split} split of {task.name} is empty")
    indices = attack_sample(len(examples), args.num_examples, args.seed if args.sample_seed is None else args.sample_seed)
    output_dir = Path(args.output_dir)
    check_inputs(output_dir, fingerprints(read), args.allow_changed_data, "the certificates", log=log)
    check_certify_output(args, output_dir)
    record_inputs(output_dir, fingerprints(read))
    certify_samples = args.certify_samples or CERTIFY_SAMPLES[smoothing.kind]
    certifier = Certifier(predictor, args, certify_samples, sets, attacks_source)
    path = output_dir / CERTIFIED_FILE
    done = read_certified(path)
    progress = tqdm(total=len(indices), initial=sum(i in done for i in indices), desc=f"certify {smoothing.kind}",
                    unit="ex", dynamic_ncols=True)
    with warnings.catch_warnings(), open(path, "a", encoding="utf-8") as stream:
        warnings.simplefilter("ignore", category=UserWarning)  # the tokenizer's truncation notices, once per copy
        for index in indices:
            if index in done:
                continue
            example = examples[index]
            done[index] = certifier.certify(index, example.text, example.text_pair, example.label)
            stream.write(json.dumps(done[index]) + "\n")
            stream.flush()  # at once: a kill loses only the example in flight
            progress.update(1)
            certified = sum(done[i]["certified"] for i in indices if i in done)
            progress.set_postfix(certified=f"{certified / progress.n:.3f}")
    progress.close()
    # in the order of the examples, whichever runs certified them (as a continued attack's records are merged)
    write_atomic(path, "".join(json.dumps(done[i]) + "\n" for i in sorted(done)))
    records = [done[i] for i in indices]
    results = {"model": args.model, "task": task.name, "split": args.split, "seed": args.seed, "synonyms": args.synonyms,
               "smoothing": dataclasses.asdict(smoothing), "trained_for_smoothing": recorded_prediction(model) is not None,
               "alpha": args.alpha, "selection_samples": args.selection_samples, "certify_samples": certify_samples,
               "untrained_head": model.rift_untrained_head or None,
               **summarize(records, smoothing.kind),
               "seconds": sum(r["seconds"] for r in records), "model_seconds": sum(r["model_seconds"] for r in records)}
    write_atomic(output_dir / CERTIFY_RESULTS_FILE, json.dumps(results, indent=2))
    return results
