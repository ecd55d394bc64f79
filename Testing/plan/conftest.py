"""Tiny synthetic volumes for the planning tests, written with SimpleITK.

``make_vol.write(path, zyx_array, spacing=(x, y, z), direction=...)`` writes one file;
``make_vol.case(...)`` writes an image (one file per channel) and its label and returns the
task.json-style case dict. Volumes are 12^3 voxels or so; the nnU-Net parity datasets a little
larger (see test_spacing_nnunet.py). No torch here, so no thread pinning is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk


def write(path: Path, arr: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None, origin=(0.0, 0.0, 0.0)) -> Path:
    """Write ``arr`` (numpy (z, y, x), as ``sitk.GetArrayFromImage`` returns) with the given grid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        img.SetDirection(tuple(float(d) for d in direction))
    sitk.WriteImage(img, str(path), True)
    return path


def case(root: Path, cid: str, channels, label: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None) -> dict:
    """Write ``channels`` (list of (z, y, x) arrays) and ``label``; return the case dict."""
    root = Path(root)
    images = [str(write(root / "imagesTr" / f"{cid}_{k:04d}.nii.gz", arr, spacing, direction))
              for k, arr in enumerate(channels)]
    lab = str(write(root / "labelsTr" / f"{cid}.nii.gz", label.astype(np.uint8), spacing, direction))
    return {"id": cid, "images": images, "label": lab}


class VolumeFactory:
    write = staticmethod(write)
    case = staticmethod(case)


@pytest.fixture
def make_vol() -> VolumeFactory:
    return VolumeFactory()
