"""``medseqft phantoms OUT``: write the project's deterministic phantom datasets.

``--kind ct`` (default): the CT-like abdominal task sequence, one ``DatasetNNN_<Name>`` per task.
``--kind mr``: one T1-like brain dataset with four small deep structures
(``Dataset101_PhantomBrainMR``). Prints the dataset folder(s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "generate deterministic phantom datasets (nnU-Net v2 layout): CT-like tasks or an MR brain"
KINDS = ("ct", "mr")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (one DatasetNNN_<Name> folder per dataset)")
    p.add_argument("--kind", choices=KINDS, default="ct",
                   help="ct: abdominal CT task sequence (default); mr: T1 brain with small deep structures")
    p.add_argument("--tasks", type=int, default=None, help="number of CT tasks (default 3; --kind ct only)")
    p.add_argument("--cases", type=int, default=None, help="labelled cases per dataset (default 12 for ct, 10 for mr)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    p.add_argument("--size", type=int, default=64, help="volume size in voxels per axis (default 64)")


def run(args, reporter) -> int:
    from ..errors import InputError

    if args.kind == "mr":
        from ..data.phantoms_mr import generate_mr_phantoms

        if args.tasks is not None:
            raise InputError("--tasks", "applies to --kind ct only; --kind mr writes one dataset")
        cases = 10 if args.cases is None else args.cases
        if cases < 2:
            raise InputError("--cases", f"must be >= 2, got {cases}")
        print(generate_mr_phantoms(args.out, cases=cases, seed=args.seed, size=args.size))
        return 0

    from ..data.phantoms import generate_phantoms

    tasks = 3 if args.tasks is None else args.tasks
    cases = 12 if args.cases is None else args.cases
    if tasks < 1 or cases < 2 or args.size < 16:
        raise InputError("phantoms", f"need --tasks >= 1, --cases >= 2, --size >= 16 (got {tasks}, {cases}, {args.size})")
    for p in generate_phantoms(args.out, tasks=tasks, cases=cases, seed=args.seed, size=args.size):
        print(p)
    return 0
