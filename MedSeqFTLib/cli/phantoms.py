"""``medseqft phantoms OUT``: write the project's deterministic phantom datasets.

``--kind ct`` (default): the CT-like abdominal task sequence, one ``DatasetNNN_<Name>`` per task.
``--kind mr``: one T1-like brain dataset with four small deep structures
(``Dataset101_PhantomBrainMR``).
``--kind ctpet``: CT + a registered PET-like channel of CT task ``--ct-task`` (default 1, Liver;
``Dataset201_PhantomLiverCTPET``), its CT identical to that task's for the same seed and size.
``--kind mr2``: the brain in T1 and T2 (``Dataset102_PhantomBrainMR2``), its T1 identical to ``mr``'s.
Prints the dataset folder(s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "generate deterministic phantom datasets (nnU-Net v2 layout): CT-like tasks, an MR brain, CT+PET or T1+T2"
KINDS = ("ct", "mr", "ctpet", "mr2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (one DatasetNNN_<Name> folder per dataset)")
    p.add_argument("--kind", choices=KINDS, default="ct",
                   help="ct: abdominal CT task sequence (default); mr: T1 brain with small deep structures; "
                        "ctpet: CT + PET-like channel of one CT task; mr2: the brain in T1 and T2")
    p.add_argument("--tasks", type=int, default=None, help="number of CT tasks (default 3; --kind ct only)")
    p.add_argument("--ct-task", type=int, default=None, metavar="N",
                   help="CT task whose anatomy, CT and labels the CT+PET dataset takes, 1-based as in the "
                        "DatasetNNN names (default 1, Liver; --kind ctpet only)")
    p.add_argument("--cases", type=int, default=None,
                   help="labelled cases per dataset (default 12 for ct and ctpet, 10 for mr and mr2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    p.add_argument("--size", type=int, default=64, help="volume size in voxels per axis (default 64)")


def run(args, reporter) -> int:
    from ..errors import InputError

    if args.tasks is not None and args.kind != "ct":
        raise InputError("--tasks", f"applies to --kind ct only; --kind {args.kind} writes one dataset")
    if args.ct_task is not None and args.kind != "ctpet":
        raise InputError("--ct-task", "applies to --kind ctpet only")
    cases = (10 if args.kind in ("mr", "mr2") else 12) if args.cases is None else args.cases
    if cases < 2 and args.kind != "ct":
        raise InputError("--cases", f"must be >= 2, got {cases}")
    if args.kind == "mr":
        from ..data.phantoms_mr import generate_mr_phantoms

        print(generate_mr_phantoms(args.out, cases=cases, seed=args.seed, size=args.size))
        return 0
    if args.kind == "mr2":
        from ..data.phantoms_multimodal import generate_mr2_phantoms

        print(generate_mr2_phantoms(args.out, cases=cases, seed=args.seed, size=args.size))
        return 0
    if args.kind == "ctpet":
        from ..data.phantoms_multimodal import generate_ctpet_phantoms

        task = 1 if args.ct_task is None else args.ct_task
        if task < 1:
            raise InputError("--ct-task", f"must be >= 1, got {task}")
        print(generate_ctpet_phantoms(args.out, task=task - 1, cases=cases, seed=args.seed, size=args.size))
        return 0

    from ..data.phantoms import generate_phantoms

    tasks = 3 if args.tasks is None else args.tasks
    if tasks < 1 or cases < 2 or args.size < 16:
        raise InputError("phantoms", f"need --tasks >= 1, --cases >= 2, --size >= 16 (got {tasks}, {cases}, {args.size})")
    for p in generate_phantoms(args.out, tasks=tasks, cases=cases, seed=args.seed, size=args.size):
        print(p)
    return 0
