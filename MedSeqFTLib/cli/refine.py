"""``medseqft refine WS``: run MDS selection and K&G RFT for every pending task, in order."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

HELP = "K&G RFT: refine the model through every pending task (FFT, KD-FFT, LoRA-KD, merge)"
DESCRIPTION = (
    "For every task without a finished model, in sequence order: choose its buffer (MDS) if it has none, "
    "then train M_t from M_{t-1} (task 1: full fine-tuning of M0; later tasks: KD-based fine-tuning, "
    "LoRA distillation and merge) and write WS/tasks/<task>/model/. Stages checkpoint regularly; "
    "after an interruption rerun with --resume to continue where it stopped. "
    "Several GPUs or nodes: start it with torchrun (docs/scale_out.md)."
)
JOB = True
DISTRIBUTED = True  # 'torchrun --nproc_per_node N -m MedSeqFTLib refine WS' (docs/scale_out.md)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="workspace folder")
    add_device_argument(p)
    p.add_argument("--resume", action="store_true", help="continue a task that was interrupted (finished stages are not redone)")


def run(args, reporter) -> int:
    from ..sequence.runner import refine_workspace
    from ..sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    done = refine_workspace(ws, reporter=reporter, device=args.device, resume=args.resume)
    if done:
        reporter.log(f"refined {len(done)} task(s): {', '.join(done)}")
    return 0
