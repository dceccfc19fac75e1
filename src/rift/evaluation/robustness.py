"""Running an attack over a seeded sample of a split: every result saved as it comes, resumable, shardable.

Each example is appended to ``examples_ATTACK.jsonl`` the moment its result is final, so a killed run loses at most
the examples in flight, and a re-run attacks only the examples that have no record yet. A last line cut short by a
kill is dropped with a warning (its example is attacked again); a damaged line anywhere else is an error. Under
``accelerate launch`` or ``torchrun`` every process attacks its share into its own part file and the main process
merges them; since every attack seeds each example by its index, the merged file equals a single-process run.
"""

from __future__ import annotations

import gzip
import json
import random
import warnings
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from rift.attacks.engine import Attack
from rift.attacks.results import AttackResult, summarize
from rift.data import Example
from rift.errors import RiftError
from rift.files import write_atomic


def sample_indices(num_available: int, num_examples: int | None, seed: int) -> list[int]:
    """A seeded sample of split positions, in increasing order; everything when ``num_examples`` is None."""
    if num_examples is None or num_examples >= num_available:
        return list(range(num_available))
    return sorted(random.Random(seed).sample(range(num_available), num_examples))


def attack_sample(num_available: int, num_examples: int | None, seed: int,
                  eligible: Callable[[int], bool] = lambda index: True) -> list[int]:
    """The split positions an attack runs on, in increasing order: the first ``num_examples`` eligible positions of
    one seeded order of the whole split (every eligible one when ``num_examples`` is None). Samples drawn with one
    seed are nested: a smaller sample lies inside a larger one of the same eligibility, and the eligible examples of
    a smaller sample lie inside a larger sample of fewer eligible ones, so that the worst case over attacks run on
    samples of different sizes covers the smaller sample (its eligible examples) entirely."""
    order = list(range(num_available))
    random.Random(seed).shuffle(order)
    chosen = [index for index in order if eligible(index)]
    return sorted(chosen[:num_examples] if num_examples is not None else chosen)


def examples_file(output_dir: Path, attack: str) -> Path:
    """Where an attack's output folder keeps its per-example results (a record keeps them gzip-compressed beside
    that name, ``compressed(path)``; ``read_results`` reads either)."""
    return output_dir / f"examples_{attack}.jsonl"


def compressed(path: Path) -> Path:
    """The gzip-compressed form of a per-example results file, as ``rift record`` stores it."""
    return path.with_name(path.name + ".gz")


def read_results(path: Path) -> dict[int, AttackResult]:
    """The records of a results file by example index, read from the file or else from its compressed form; a last
    line cut short is left out with a warning."""
    results = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
    elif compressed(path).exists():
        text = gzip.decompress(compressed(path).read_bytes()).decode("utf-8")
    else:
        return results
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            result = AttackResult.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            if number == len(lines):  # the file does not end in a newline: the write of this line was cut short
                warnings.warn(f"{path}: the last line is incomplete (a run killed while writing it); dropping it, "
                              "its example will be attacked again", stacklevel=2)
                break
            raise RiftError(f"{path}, line {number}: not an attack result ({error}); remove the line to go on") from None
        results[result.index] = result
    return results


def drop_incomplete_last_line(path: Path) -> None:
    """Cut a file back to its last newline, so that appended records start on a line of their own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as stream:
            stream.truncate(data.rfind(b"\n") + 1)


def write_results(path: Path, results: Sequence[AttackResult], mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as stream:
        for result in results:
            stream.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")


def run_attack(
    attack: Attack,
    examples: Sequence[Example],
    indices: Sequence[int],
    output_dir: Path,
    accelerator=None,
    chunk_size: int = 16,
    show_progress: bool = True,
    mark: Callable[[AttackResult], None] | None = None,
) -> dict:
    """Attack ``examples[i]`` for every ``i`` in ``indices`` (skipping those already in the output) and return the
    summary metrics over all of ``indices``. ``mark`` annotates each result before it is saved (the training
    surface of its changes)."""
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    final = examples_file(output_dir, attack.name)
    if rank == 0 and not final.exists() and compressed(final).exists():  # a record attacked further: live again
        write_atomic(final, gzip.decompress(compressed(final).read_bytes()))
        compressed(final).unlink()
    if accelerator:
        accelerator.wait_for_everyone()
    parts = sorted(output_dir.glob(f"examples_{attack.name}.part*.jsonl"))
    done: dict[int, AttackResult] = {}
    for path in [final, *parts]:
        done.update(read_results(path))
    todo = [i for i in indices if i not in done][rank::world]
    mine = final if world == 1 else output_dir / f"examples_{attack.name}.part{rank}.jsonl"
    if accelerator:  # every process reads what is done before any writes: a late reader would split another list
        accelerator.wait_for_everyone()

    finished = [done[i] for i in indices if i in done]
    progress = tqdm(total=len(indices), initial=len(finished), desc=attack.name, unit="ex",
                    disable=not show_progress or rank != 0, dynamic_ncols=True)
    drop_incomplete_last_line(mine)

    def save(result: AttackResult) -> None:  # at once: a kill loses only the examples still in flight
        if mark is not None:
            mark(result)
        write_results(mine, [result])
        finished.append(result)
        running = summarize(finished)
        progress.update(world)
        progress.set_postfix(robust=f"{running['robust_accuracy']:.3f}", clean=f"{running['clean_accuracy']:.3f}")

    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        attack.attack([examples[i] for i in chunk], chunk, on_result=save)
    progress.close()

    if accelerator:
        accelerator.wait_for_everyone()
    if rank == 0:  # merge the part files (of this run, or of an interrupted multi-process one), sorted by index
        merged = read_results(final)
        parts = sorted(output_dir.glob(f"examples_{attack.name}.part*.jsonl"))
        for path in parts:
            merged.update(read_results(path))
        if mark is not None:  # records of an earlier run made without the marks get them now
            for result in merged.values():
                if any(change.in_training_surface is None for change in result.changes):
                    mark(result)
        write_results(final, [merged[i] for i in sorted(merged)], mode="w")
        for path in parts:
            path.unlink()
    if accelerator:
        accelerator.wait_for_everyone()
    all_results = read_results(final)
    return summarize([all_results[i] for i in indices])
