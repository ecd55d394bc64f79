"""``medseqft add-task WS DATASET [--name NAME] [--modality M]``: validate a dataset and append it as a task."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

HELP = "validate a dataset folder (nnU-Net v2, Decathlon, or images/+labels/) and add it as the next task"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path)
    p.add_argument("dataset", type=Path, help="nnU-Net v2 raw folder, Decathlon task folder, or a folder with images/ and labels/")
    p.add_argument("--name", default=None, help="task name (default: the dataset's name)")
    p.add_argument("--modality", default=None, metavar="{CT,MR,PET,other}",
                   help="modality of the images, case-insensitive; sets it for an images/+labels/ folder (default: "
                        "guessed from intensities) and must agree with dataset.json for nnU-Net/Decathlon")
    p.add_argument("--train-fraction", type=float, default=0.8, help="share of labelled cases used for training (default 0.8)")
    p.add_argument("--split-seed", type=int, default=None, help="seed of the train/test split (default: the workspace seed)")
    add_device_argument(p, purpose="the task's plan sizes its training patch for (re-plan with 'medseqft plan --replan')")


def run(args, reporter) -> int:
    from ..data.modality import normalise_modality
    from ..errors import InputError
    from ..sequence.workspace import Workspace

    if args.name is not None and not args.name.strip():
        raise InputError("--name", "must not be empty; leave --name out to use the dataset's name")
    modality = None if args.modality is None else normalise_modality(args.modality, "--modality")
    if not 0.0 < args.train_fraction < 1.0:
        raise InputError("--train-fraction", f"must lie strictly between 0 and 1, got {args.train_fraction}")
    ws = Workspace.open(args.workspace)
    with ws.lock("add-task"):
        ws = Workspace.open(args.workspace)  # re-read under the lock
        rec = ws.add_task(args.dataset, name=args.name, reporter=reporter, train_fraction=args.train_fraction,
                          split_seed=args.split_seed, modality=modality, device=args.device)
    labels = ", ".join(f"{k}={v}" for k, v in rec["labels"].items())
    print(f"added task {rec['name']} ({rec['source']['format']}, {rec['modality']}): {len(rec['cases'])} labelled cases "
          f"(train {len(rec['split']['train'])}, test {len(rec['split']['test'])}), labels {labels}")
    for w in rec["warnings"]:
        print(f"warning: {w}")
    values = rec["plan"]["values"]
    print(f"plan ({rec['plan']['device']}): spacing {values['preprocess.spacing']} mm, patch {values['preprocess.patch_size']}, "
          f"normalisation {values['preprocess.normalization']}; see 'medseqft plan {args.workspace} --task {rec['name']}'")
    return 0
