"""``medseqft predict WS --task NAME --out DIR IMAGE...``: segment volumes with a finished task's model."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

HELP = "segment images with a finished task's model (labels written in each input's own geometry)"
DESCRIPTION = (HELP + ". Each IMAGE is one case; for a task with several channels give a case as its channel "
               "files joined by commas (ct.nii.gz,pet.nii.gz). Writes DIR/<case><suffix> plus "
               "DIR/<case>.labels.json ({label name: value}); NRRD outputs also carry Slicer segment names.")
JOB = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="the workspace folder")
    p.add_argument("--task", required=True, help="task whose model to use (must be refined: status done)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--suffix", default=None, choices=[".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha"],
                   help="output format (default: the input's)")
    p.add_argument("--transductive", action="store_true",
                   help="adapter tasks (black-box methods): first adapt the task's modules on these images with its "
                        "size prior (adapter.transductive_steps steps; the workspace is not changed)")
    add_device_argument(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file per case (channels comma-joined)")


def run(args, reporter) -> int:
    from ..inference.predict import parse_image_args, predict_files
    from ..sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    record = ws.task(args.task)
    n_channels = max(1, len(record.get("channel_names") or {}) or ws.config.arch.in_channels)
    cases = parse_image_args(args.images, n_channels)
    written = predict_files(ws, args.task, cases, args.out, reporter=reporter, suffix=args.suffix, device=args.device,
                            transductive=args.transductive)
    for path in written:
        print(path)
    return 0
