"""``medseqft report WS``: HTML and Markdown report with tables, plots and overlay PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

HELP = "write WS/reports/report.html and report.md (metrics, forgetting, losses, overlays, parameter change)"
JOB = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="the workspace folder")
    p.add_argument("--evaluate", action="store_true",
                   help="(re)run the evaluation first; by default it only runs when WS/metrics is missing")
    add_device_argument(p, default="auto", purpose="for a needed evaluation")
    p.add_argument("--slices", type=int, default=3, help="overlay slices per task (default 3)")


def run(args, reporter) -> int:
    from ..report.report import write_report
    from ..sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    paths = write_report(ws, reporter=reporter, evaluate=args.evaluate, device=args.device, n_slices=args.slices)
    for p in paths:
        print(p)
    return 0
