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
    p.add_argument("--channels", default=None, metavar="M1,M2,...",
                   help="modality of each image channel (CASE_0000, CASE_0001, ...), e.g. CT,PET or T1,T2: names a "
                        "plain folder's channels, must agree with dataset.json otherwise (docs/modalities.md)")
    p.add_argument("--train-fraction", type=float, default=0.8, help="share of labelled cases used for training (default 0.8)")
    p.add_argument("--split-seed", type=int, default=None, help="seed of the train/test split (default: the workspace seed)")
    mode = p.add_argument_group("task mode (docs/fewshot.md)")
    mode.add_argument("--mode", default="kg_rft", choices=["kg_rft", "adapter"],
                      help="kg_rft (default): the task refines the shared model (MedSeqFT); adapter: the current "
                           "shared model stays frozen and the task trains only its own small modules (FSEFT)")
    mode.add_argument("--method", default=None, choices=list(_methods()),
                      help="adapter mode: what the task trains (default spatial_adapter)")
    mode.add_argument("--shots", type=int, default=None, metavar="K",
                      help="adapter mode: use only K labelled training volumes, drawn reproducibly (default: all)")
    mode.add_argument("--shots-seed", type=int, default=0, metavar="S", help="seed of the --shots draw (default 0)")
    mode.add_argument("--transductive", action="store_true",
                      help="adapter mode, black-box methods: also adapt on the task's unlabelled test images with "
                           "the support's size prior")
    add_device_argument(p, purpose="the task's plan sizes its training patch for (re-plan with 'medseqft plan --replan')")


def _methods():
    from ..adapters.config import METHODS

    return METHODS


def _adapter_args(args):
    """``(mode, adapter dict or None)`` from the flags; adapter-only flags without ``--mode adapter`` are refused."""
    from ..errors import InputError

    if args.mode != "adapter":
        for flag, value in (("--method", args.method), ("--shots", args.shots), ("--transductive", args.transductive or None)):
            if value is not None:
                raise InputError(flag, "only applies to adapter tasks; add --mode adapter")
        return "kg_rft", None
    if args.shots is not None and args.shots < 1:
        raise InputError("--shots", f"must be >= 1, got {args.shots}")
    return "adapter", {"method": args.method or "spatial_adapter", "shots": args.shots, "shots_seed": args.shots_seed,
                       "transductive": bool(args.transductive)}


def run(args, reporter) -> int:
    from ..data.modality import normalise_modality
    from ..errors import InputError
    from ..sequence.workspace import Workspace

    if args.name is not None and not args.name.strip():
        raise InputError("--name", "must not be empty; leave --name out to use the dataset's name")
    modality = None if args.modality is None else normalise_modality(args.modality, "--modality")
    channels = None
    if args.channels is not None:
        from ..data.modality import parse_channels

        if modality is not None:
            raise InputError("--channels", "give either --modality or --channels (which names each channel's modality)")
        channels = parse_channels(args.channels)
    if not 0.0 < args.train_fraction < 1.0:
        raise InputError("--train-fraction", f"must lie strictly between 0 and 1, got {args.train_fraction}")
    mode, adapter = _adapter_args(args)
    ws = Workspace.open(args.workspace)
    with ws.lock("add-task"):
        ws = Workspace.open(args.workspace)  # re-read under the lock
        rec = ws.add_task(args.dataset, name=args.name, reporter=reporter, train_fraction=args.train_fraction,
                          split_seed=args.split_seed, modality=modality, device=args.device,
                          mode=mode, adapter=adapter, channels=channels)
    labels = ", ".join(f"{k}={v}" for k, v in rec["labels"].items())
    print(f"added task {rec['name']} ({rec['source']['format']}, {rec['modality']}): {len(rec['cases'])} labelled cases "
          f"(train {len(rec['split']['train'])}, test {len(rec['split']['test'])}), labels {labels}")
    if rec.get("adapter"):
        ad = rec["adapter"]
        print(f"adapter task: {ad['method']} on {len(ad['support'])} support case(s) ({', '.join(ad['support'])})"
              + (", transductive" if ad["transductive"] else ""))
    for w in rec["warnings"]:
        print(f"warning: {w}")
    values = rec["plan"]["values"]
    print(f"plan ({rec['plan']['device']}): spacing {values['preprocess.spacing']} mm, patch {values['preprocess.patch_size']}, "
          f"normalisation {values['preprocess.normalization']}; see 'medseqft plan {args.workspace} --task {rec['name']}'")
    return 0
