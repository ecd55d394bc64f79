"""``medseqft demo [--out DIR] [--quick]``: the whole pipeline on generated phantom tasks."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

HELP = "run the whole pipeline on generated phantom tasks (phantoms, M0, 3 tasks, refine, evaluate, report)"
JOB = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("medseqft_demo"), help="output folder (default ./medseqft_demo); "
                   "rerunning with the same folder reuses finished work")
    p.add_argument("--quick", action="store_true", help="smaller phantoms and fewer iterations (about 2 minutes on a 2-core CPU)")
    add_device_argument(p)


def job_root(args):
    return Path(args.out) / "jobs"


def _fmt(v, pct=True):
    if v is None:
        return "  n/a"
    return f"{100 * v:5.1f}" if pct else f"{v:6.2f}"


def run(args, reporter) -> int:
    from ..sequence.demo import run_demo

    s = run_demo(args.out, quick=args.quick, device=args.device, reporter=reporter)
    doc = s["forgetting"]
    order = doc["tasks"]
    print(f"\nMedSeqFT demo ({'quick' if s['quick'] else 'full'}): {len(order)} tasks, workspace {s['workspace']}")
    print(f"{'task':<28} {'Dice % after own task':>22} {'Dice % final model':>19} {'Dice % untrained':>17} {'HD95 mm final':>14}")
    last = len(order) - 1
    for j, t in enumerate(order):
        print(f"{t:<28} {_fmt(doc['dice'][j][j]):>22} {_fmt(doc['dice'][last][j]):>19} "
              f"{_fmt(s['untrained_dice'].get(t)):>17} {_fmt(doc['hd95'][last][j], pct=False):>14}")
    for t in order:
        classes = s["class_dice"].get(t, {})
        print(f"  {t} per class (own model): " + ", ".join(f"{c} {_fmt(v).strip()}" for c, v in classes.items()))
    avg = doc["average_dice"][last]
    print(f"final model, average Dice over all tasks: {_fmt(avg)} %; backward transfer (Dice): "
          + (f"{100 * doc['bwt_dice']:+.1f} points" if doc.get("bwt_dice") is not None else "n/a"))
    print("\nseconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in s["stage_seconds"].items()))
    print(f"total: {s['seconds']:.1f} s")
    print(f"report: {s['report']}")
    return 0
