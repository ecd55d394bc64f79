"""``medseqft phantoms OUT``: write the project's deterministic CT-like phantom task datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "generate deterministic CT-like phantom tasks (nnU-Net v2 datasets) for the demo and tests"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (one DatasetNNN_<Name> folder per task)")
    p.add_argument("--tasks", type=int, default=3, help="number of tasks (default 3)")
    p.add_argument("--cases", type=int, default=12, help="labelled cases per task (default 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    p.add_argument("--size", type=int, default=64, help="volume size in voxels per axis (default 64)")


def run(args, reporter) -> int:
    from ..data.phantoms import generate_phantoms
    from ..errors import InputError

    if args.tasks < 1 or args.cases < 2 or args.size < 16:
        raise InputError("phantoms", f"need --tasks >= 1, --cases >= 2, --size >= 16 (got {args.tasks}, {args.cases}, {args.size})")
    paths = generate_phantoms(args.out, tasks=args.tasks, cases=args.cases, seed=args.seed, size=args.size)
    for p in paths:
        print(p)
    return 0
