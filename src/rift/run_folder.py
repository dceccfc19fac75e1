"""The names of the files in the folders rift writes, declared once: a training run (``rift train``), an attack run
(``rift attack``) and a bench (``rift bench``) whose cells are training runs with an attack run inside."""

# in any folder while a rift process writes it (rift.files.folder_lock); gone when the process ends
LOCK_FILE = ".rift.lock"
# in a training run's and an attack run's folder: the fingerprints of the data, synonym tables and weights it read
INPUTS_FILE = "rift_inputs.json"

# a training run
CONFIG_FILE = "rift_config.yaml"  # every option of the run
METRICS_FILE = "metrics.json"  # written when the run finishes: a folder without it is unfinished
LOG_FILE = "train_log.jsonl"  # loss terms and dev metrics by step
LOGS_DIR = "logs"  # TensorBoard
RESUME_DIR = "resume"  # the Trainer's checkpoints, for --resume
CARD_FILE = "README.md"  # the model card
ROBUSTNESS_FILE = "robustness.json"  # the attacks run on the model, with their settings
# in a recorded cell (rift record keeps no weights): the fingerprints of the weights it was recorded from, which a
# retrained cell must reproduce before its attacks continue (rift bench --retrain-missing-weights)
WEIGHTS_FILE = "rift_weights.json"
RETRAINED_DIR = "retrained"  # a recorded cell's training run again, until its weights are checked and moved in

# an attack run
ATTACK_CONFIG_FILE = "attack_config.yaml"
ATTACK_RESULTS_FILE = "results.json"

# a certification run (rift certify): its settings, every example's certificate, the summary
CERTIFY_CONFIG_FILE = "certify_config.yaml"
CERTIFIED_FILE = "certified.jsonl"
CERTIFY_RESULTS_FILE = "results.json"

# a bench (grid) folder: cells/TASK-METHOD-sSEED/ are training runs, each with its attack run on the test split in
# attacks/ and on another split in attacks-SPLIT/; the grid's tables are results.{json,csv,md} for the test split and
# results-SPLIT.{json,csv,md} for another
CELLS_DIR = "cells"
ATTACKS_DIR = "attacks"
CERTIFIED_DIR = "certified"  # a cell trained with a smoothing defence: rift certify's run, certified-SPLIT/ likewise
GRID_RESULTS_FILE = "results.json"
GRID_RESULTS_FILES = (GRID_RESULTS_FILE, "results.csv", "results.md")
REPORT_FILE = "report.html"
CELL_LOGS_DIR = "logs"  # rift bench --jobs N: each cell's output, logs/TASK-METHOD-sSEED.log


def for_split(name: str, split: str) -> str:
    """A bench file or folder name for the attacks on ``split``: the name itself for test (so that every bench
    before splits were told apart reads as a test grid), ``STEM-SPLIT.SUFFIX`` for another split."""
    if split == "test":
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{split}{dot}{suffix}"
