"""What the attack benchmarks share: the machine's options (data folder, CPU threads) and a right-aligned table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch


def add_machine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, with torch's CPU threads set as ``--threads`` asks."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def print_table(header: Sequence, rows: Sequence[Sequence]) -> None:
    widths = [max(len(str(row[k])) for row in [header, *rows]) for k in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))
