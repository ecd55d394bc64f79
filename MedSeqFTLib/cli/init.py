"""``medseqft init WS --foundation {demo|PATH}``: create a workspace around a foundation model."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "create a workspace around a foundation model (the demo model or a checkpoint file)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="folder to create (must be new or empty)")
    p.add_argument("--foundation", required=True, help="'demo' (the project's own small pretrained model) or a checkpoint: "
                   "our .safetensors, VoCo .pt/.pth, MONAI model_swinvit.pt, or a plain state dict")
    p.add_argument("--arch", choices=["small_unet", "swin_unetr"], default=None,
                   help="backbone (default: from the checkpoint's metadata; swin_unetr for foreign checkpoints)")
    p.add_argument("--preset", choices=["paper", "cpu", "cpu_demo"], default=None,
                   help="hyper-parameter preset (default: cpu for small_unet, paper for swin_unetr; the demo uses cpu_demo)")
    p.add_argument("--feature-size", type=int, default=None, help="backbone width (SwinUNETR: 48 = VoCo-B, 96 = L, 192 = H)")
    p.add_argument("--no-legacy-merge", action="store_true",
                   help="SwinUNETR: use MONAI>=1.5 PatchMerging order (only for checkpoints trained with it)")
    p.add_argument("--min-match", type=float, default=0.8, help="refuse a foreign checkpoint when fewer than this share of encoder tensors load (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed for splits, sampling and training (default 0)")


def run(args, reporter) -> int:
    from ..sequence.init import init_workspace

    ws, report = init_workspace(args.workspace, args.foundation, arch=args.arch, preset_name=args.preset,
                                feature_size=args.feature_size, legacy_merge=not args.no_legacy_merge,
                                min_match=args.min_match, seed=args.seed, reporter=reporter)
    if report is not None:
        print(report)
    f = ws.manifest["foundation"]
    head = f"SSL pretext {f['ssl_pretext']}" if f.get("ssl_pretext") else "no SSL head: MDS needs --fit-ssl-head or --random"
    print(f"workspace {ws.root}: foundation {f['source']} ({ws.config.arch.name}, feature size "
          f"{ws.config.arch.feature_size}, {head})")
    print(f"next: medseqft add-task {ws.root} DATASET")
    return 0
