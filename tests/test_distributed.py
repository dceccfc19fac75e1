"""Two processes (torchrun on the CPU, gloo backend): attack evaluation merges to exactly the single-process result,
and training with RIFT's trainable heads runs under DistributedDataParallel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from conftest import sentiment_examples
from test_cli import write_csv

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow  # every test starts torchrun


def data_options(tmp_path: Path) -> list[str]:
    # the label names of the session's tiny model (sentiment_task's), which the attack tests run on
    names = ("negative", "positive")
    train = write_csv(tmp_path / "train.csv", sentiment_examples(64, 0), names)
    test = write_csv(tmp_path / "test.csv", sentiment_examples(40, 2), names)
    return ["--task", "file", "--train-file", str(train), "--dev-file", str(train), "--test-file", str(test),
            "--text-column", "review", "--label-column", "sentiment", "--label-names", ",".join(names),
            "--max-length", "32"]


def run(command: list[str], processes: int) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    if processes == 1:
        launcher = [str(BIN / "rift")]
    else:
        launcher = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(processes), "-m", "rift.cli"]
    result = subprocess.run(launcher + command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def records(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("seconds")  # wall time differs between runs
    return rows


def assert_same_results(one: list[dict], two: list[dict]) -> None:
    """Equal records; probabilities to float precision, since batches are padded differently in each process."""
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for key in a:
            if key.endswith("probabilities"):
                assert a[key] == pytest.approx(b[key], abs=1e-4), (a["index"], key)
            else:
                assert a[key] == b[key], (a["index"], key)


def test_two_process_attack_equals_one_process(tmp_path, trained_tiny_dir):
    common = ["attack", "--model", trained_tiny_dir, *data_options(tmp_path), "--attack", "ascc,pwws",
              "--split", "test", "--num-examples", "30", "--seed", "2"]
    run([*common, "--output-dir", str(tmp_path / "one")], 1)
    run([*common, "--output-dir", str(tmp_path / "two")], 2)
    assert not list((tmp_path / "two").glob("*.part*.jsonl")), "part files are merged and removed"
    for name in ("ascc", "pwws"):
        one, two = records(tmp_path / "one" / f"examples_{name}.jsonl"), records(tmp_path / "two" / f"examples_{name}.jsonl")
        assert len(one) == 30
        assert_same_results(one, two)
    summaries = [json.loads((tmp_path / d / "results.json").read_text())["attacks"] for d in ("one", "two")]
    for name in ("ascc", "pwws"):
        for key in ("clean_accuracy", "robust_accuracy", "attack_success_rate", "mean_queries", "num_examples"):
            assert summaries[0][name][key] == pytest.approx(summaries[1][name][key]), (name, key)


def test_two_process_training_equals_one_process_with_accumulated_gradients(tmp_path, tiny_model_dir):
    """Two processes with batches of 8 each take the steps of one process accumulating two batches of 8: the same
    batches (the class-balanced sampler's batches are dealt to the processes in turn), the same averaged gradients.
    The method trains RIFT's class-conditional heads on the teacher's cached features under DistributedDataParallel
    (rift-clean: the MI term on clean features; beta 0, so that the adversary's random starts, which each process
    draws on its own, do not enter the loss) on a model without dropout, so that both runs compute the same
    function. Tolerance: 1e-5 on every weight (float sums in another order; measured differences are ~1e-7)."""
    from transformers import AutoConfig

    from rift.cli import main

    model = shutil.copytree(tiny_model_dir, tmp_path / "no-dropout")
    config = AutoConfig.from_pretrained(model)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(model)
    common = ["train", "--model", str(model), *data_options(tmp_path), "--method", "rift-clean", "--beta", "0",
              "--alpha", "0.5", "--epochs", "1", "--batch-size", "8", "--ascc-steps", "1", "--learning-rate", "1e-3",
              "--retention-examples", "0", "--num-threads", "1"]
    run([*common, "--output-dir", str(tmp_path / "two")], 2)
    assert main([*common, "--gradient-accumulation-steps", "2", "--output-dir", str(tmp_path / "one")]) == 0
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two")]
    # 64 examples in balanced batches of 8 give 8 batches: 4 optimiser steps either way
    assert metrics[0]["steps"] == metrics[1]["steps"] == 4
    one, two = (load_file(tmp_path / d / "model.safetensors") for d in ("one", "two"))
    pretrained = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    moved = [name for name in pretrained if not torch.allclose(one["bert." + name], pretrained[name])]
    assert len(moved) > len(pretrained) // 2  # the runs trained: most weights left their pre-trained values


def test_robust_trainer_under_torchrun_keeps_every_process_identical(tmp_path, tiny_model_dir):
    """The HF example script with RobustTrainer and RIFT under torchrun: the model (inside DDP) and RIFT's heads
    (outside it, averaged by RobustTrainer) end the same on both processes."""
    root = Path(__file__).resolve().parents[1]
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{e.text},{e.label}\n" for e in sentiment_examples(64, 0)))
    script = tmp_path / "run_example.py"
    script.write_text(
        "import os, sys, torch, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('example', {str(root / 'examples' / 'hf_trainer_rift.py')!r})\n"
        "example = importlib.util.module_from_spec(spec); spec.loader.exec_module(example)\n"
        "trainer = example.main(sys.argv[1:])\n"
        "assert trainer.accelerator.num_processes == 2\n"
        "state = {'heads.' + k: v for k, v in trainer.objective.state_dict().items()}\n"
        "state |= {'model.' + k: v for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}\n"
        f"torch.save(state, os.path.join({str(tmp_path)!r}, f\"state{{os.environ['RANK']}}.pt\"))\n")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(script),
                             "--model", tiny_model_dir, "--train-file", str(train), "--text-column", "text",
                             "--max-steps", "4", "--batch-size", "8", "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (torch.load(tmp_path / f"state{rank}.pt") for rank in (0, 1))
    assert any(key.startswith("heads.") for key in first) and first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=1e-6, msg=key)
    assert (tmp_path / "out" / "model.safetensors").exists()
