"""Helpers for command-line tests: run the CLI in-process, tiny datasets, workspace snapshots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from MedSeqFTLib.cli import main


def run_cli(*argv, capsys=None):
    """Run ``medseqft`` in-process; returns ``(exit_code, stdout, stderr)``."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr() if capsys is not None else None
    return code, (out.out if out else ""), (out.err if out else "")


def snapshot(folder: Path) -> dict:
    """Path -> sha256 of every file under ``folder`` (what 'unchanged' means in the tests)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_image(path: Path, array: np.ndarray, spacing=(2.0, 2.0, 2.5), origin=(0.0, 0.0, 0.0), direction=None):
    """``array`` is numpy (z, y, x) order as SimpleITK expects."""
    img = sitk.GetImageFromArray(array)
    if array.ndim == 3:
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        if direction is not None:
            img.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def make_nnunet(root: Path, n: int = 4, size: int = 16, seed: int = 0, labels=None, ending: str = ".nii.gz") -> Path:
    """A valid tiny nnU-Net v2 raw dataset with a cube 'organ' (1) and a 'lesion' (2) in it."""
    rng = np.random.default_rng(seed)
    labels = labels or {"background": 0, "organ": 1, "lesion": 2}
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.normal(0, 20, (size, size, size)).astype(np.float32) - 100
        lab = np.zeros((size, size, size), np.uint8)
        lo, hi = size // 4, 3 * size // 4
        lab[lo:hi, lo:hi, lo:hi] = 1
        lab[lo + 1:lo + 3, lo + 1:lo + 3, lo + 1:lo + 3] = 2
        img[lab == 1] += 160
        write_image(root / "imagesTr" / f"case{i:02d}_0000{ending}", img)
        write_image(root / "labelsTr" / f"case{i:02d}{ending}", lab)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": labels, "numTraining": n, "file_ending": ending}))
    return root




def make_plain(root: Path, n: int = 3, size: int = 16, empty_labels: bool = False) -> Path:
    """A tiny images/ + labels/ folder with CT-like intensities (a strip of air at -1000)."""
    for i in range(n):
        img = np.full((size, size, size), 40.0, np.float32)
        img[:, :, :2] = -1000.0
        lab = np.zeros((size, size, size), np.uint8)
        if not empty_labels:
            lab[size // 4:3 * size // 4, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
        write_image(root / "images" / f"p{i}.nii.gz", img)
        write_image(root / "labels" / f"p{i}.nii.gz", lab)
    return root
