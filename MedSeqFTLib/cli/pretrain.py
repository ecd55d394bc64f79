"""``medseqft pretrain OUT.safetensors --data SRC...``: SSL-pretrain a small foundation model (M0).

Not a workspace job (it has no workspace): it runs in the foreground with a progress bar.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "SSL-pretrain a small foundation model on unlabelled volumes (writes our .safetensors M0)"
DESCRIPTION = (
    "Read every image of the given dataset folders (nnU-Net v2 / MSD / plain; labels ignored), image folders "
    "or image files, preprocess them with the cpu_demo settings (RAS, 3 mm, CT window), SSL-pretrain a fresh "
    "backbone on random patches and write OUT (safetensors, encoder + SSL head + metadata). Use it with "
    "'medseqft init WS --foundation OUT'. Same data and seed -> same weights (CPU)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output file (.safetensors)")
    p.add_argument("--data", nargs="+", required=True, type=Path, metavar="SRC",
                   help="dataset folders, image folders or image files to pretrain on")
    p.add_argument("--arch", choices=["small_unet", "swin_unetr"], default="small_unet", help="backbone (default small_unet)")
    p.add_argument("--feature-size", type=int, default=None, help="backbone width (default: 8 small_unet, 12 swin_unetr)")
    p.add_argument("--pretext", choices=["masked", "voco"], default="masked", help="SSL pretext (default masked)")
    p.add_argument("--steps", type=int, default=200, help="optimiser steps (default 200)")
    p.add_argument("--batch-size", type=int, default=2, help="patches per step (default 2)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--size", type=int, nargs="+", default=None, metavar="N",
                   help="patch size: one number or three (default: 32, the cpu_demo patch; 64 for swin_unetr)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args, reporter) -> int:
    from ..config import ArchConfig
    from ..demo_foundation import build_foundation
    from ..errors import InputError

    if args.out.suffix != ".safetensors":
        raise InputError(args.out, "output must end in .safetensors")
    if args.out.exists() and not args.force:
        raise InputError(args.out, "exists; pass --force to overwrite it")
    if args.out.exists() and args.out.is_dir():
        raise InputError(args.out, "is a folder; give a file name ending in .safetensors")
    if args.steps < 1:
        raise InputError("--steps", f"must be >= 1, got {args.steps}")
    if args.batch_size < 1:
        raise InputError("--batch-size", f"must be >= 1, got {args.batch_size}")
    if not args.lr > 0:
        raise InputError("--lr", f"must be > 0, got {args.lr}")
    swin = args.arch == "swin_unetr"
    arch = ArchConfig(name=args.arch, feature_size=args.feature_size or (12 if swin else 8))
    size = args.size or [64 if swin else 32]
    if len(size) not in (1, 3) or any(s < 8 for s in size):
        raise InputError("--size", f"give one or three integers >= 8, got {size}")
    patch = tuple(size * 3 if len(size) == 1 else size)
    meta = build_foundation(args.out, args.data, arch=arch, pretext=args.pretext, steps=args.steps, seed=args.seed,
                            patch_size=patch, batch_size=args.batch_size, lr=args.lr, reporter=reporter)
    p = meta["pretrain"]
    print(f"{args.out}: {arch.name} (feature size {arch.feature_size}), {args.pretext} pretext, {meta['n_volumes']} volumes, "
          f"{p['steps']} steps, SSL loss {p['first_loss']:.4f} -> {p['final_loss']:.4f}, {p['seconds']:.1f} s")
    print(f"next: medseqft init WS --foundation {args.out}")
    return 0
