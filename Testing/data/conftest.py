"""Tiny synthetic datasets written with SimpleITK, in the three layouts ``read_dataset`` knows.

Use the ``make_ds`` fixture: ``make_ds.nnunet(tmp_path / "Dataset001_X")`` etc. Every volume is
12^3 voxels or smaller so the whole data suite stays within a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SHAPE = (12, 11, 10)  # (Z, Y, X) as numpy sees a sitk image: size 10x11x12


def volume(seed: int, shape=SHAPE, ct: bool = True) -> np.ndarray:
    """A smooth-ish intensity volume; CT-like (air at -1000) or MR-like (positive)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(40.0, 20.0, size=shape).astype(np.float32)
    if ct:
        base[:, :, :2] = -1000.0  # a strip of air, as every CT has
    else:
        base = np.abs(base) + 5.0
    return base


def label_map(seed: int, shape=SHAPE, n_labels: int = 2) -> np.ndarray:
    """A ball of label 1 with a smaller ball of label 2 inside (if ``n_labels`` > 1)."""
    rng = np.random.default_rng(seed + 1000)
    z, y, x = np.indices(shape)
    c = np.array(shape) / 2 + rng.uniform(-1, 1, size=3)
    r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    lab = np.zeros(shape, dtype=np.uint8)
    lab[r < 4] = 1
    if n_labels > 1:
        lab[r < 2] = 2
    return lab


def write(path: Path, arr: np.ndarray, spacing=(1.0, 1.2, 1.5), origin=(-5.0, 3.0, 7.0), direction=None,
          is_vector: bool = False) -> Path:
    """Write ``arr`` (numpy (Z, Y, X)) with the given grid; suffix picks the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(arr, isVector=is_vector)
    dim = img.GetDimension()
    img.SetSpacing(tuple(spacing)[:dim] if len(spacing) >= dim else tuple(spacing) + (1.0,) * (dim - len(spacing)))
    img.SetOrigin(tuple(origin)[:dim] if len(origin) >= dim else tuple(origin) + (0.0,) * (dim - len(origin)))
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path), True)
    return path


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=1))
    return path


class DatasetFactory:
    """Writers for the three layouts; each returns the dataset folder."""

    volume = staticmethod(volume)
    label_map = staticmethod(label_map)
    write = staticmethod(write)
    write_json = staticmethod(write_json)

    @staticmethod
    def nnunet(root: Path, n_cases: int = 3, channels=("CT",), ending: str = ".nii.gz", n_test: int = 1,
               labels=None, meta_extra=None) -> Path:
        labels = labels or {"background": 0, "liver": 1, "tumour": 2}
        root = Path(root)
        for i in range(n_cases):
            for k, name in enumerate(channels):
                write(root / "imagesTr" / f"case_{i:03d}_{k:04d}{ending}", volume(10 * i + k, ct=name == "CT"))
            write(root / "labelsTr" / f"case_{i:03d}{ending}", label_map(i, n_labels=len(labels) - 1))
        for i in range(n_test):
            for k, name in enumerate(channels):
                write(root / "imagesTs" / f"test_{i:03d}_{k:04d}{ending}", volume(500 + i, ct=name == "CT"))
        meta = {"channel_names": {str(k): n for k, n in enumerate(channels)}, "labels": labels,
                "numTraining": n_cases, "file_ending": ending, "name": "Synthetic"}
        meta.update(meta_extra or {})
        write_json(root / "dataset.json", meta)
        return root

    @staticmethod
    def msd(root: Path, n_cases: int = 3, ending: str = ".nii.gz", n_test: int = 1, modality="CT") -> Path:
        root = Path(root)
        training, test = [], []
        for i in range(n_cases):
            write(root / "imagesTr" / f"organ_{i}{ending}", volume(i, ct=modality == "CT"))
            write(root / "labelsTr" / f"organ_{i}{ending}", label_map(i))
            training.append({"image": f"./imagesTr/organ_{i}{ending}", "label": f"./labelsTr/organ_{i}{ending}"})
        for i in range(n_test):
            write(root / "imagesTs" / f"organ_{100 + i}{ending}", volume(100 + i))
            test.append(f"./imagesTs/organ_{100 + i}{ending}")
        # the MSD archives carry macOS AppleDouble files next to the images
        (root / "imagesTr" / f"._organ_0{ending}").write_bytes(b"\x00\x05\x16\x07junk")
        write_json(root / "dataset.json", {
            "name": "Organ", "tensorImageSize": "3D", "modality": {"0": modality},
            "labels": {"0": "background", "1": "organ", "2": "lesion"},
            "numTraining": n_cases, "numTest": n_test, "training": training, "test": test})
        return root

    @staticmethod
    def plain(root: Path, n_cases: int = 3, ending: str = ".nrrd", label_ending: str = ".mha",
              n_channels: int = 1, ct: bool = True, labels_json=None, split=None) -> Path:
        root = Path(root)
        for i in range(n_cases):
            if n_channels == 1:
                write(root / "images" / f"p{i}{ending}", volume(i, ct=ct))
            else:
                for k in range(n_channels):
                    write(root / "images" / f"p{i}_{k:04d}{ending}", volume(10 * i + k, ct=ct))
            write(root / "labels" / f"p{i}{label_ending}", label_map(i))
        if labels_json is not None:
            write_json(root / "labels.json", labels_json)
        if split is not None:
            write_json(root / "split.json", split)
        return root


@pytest.fixture
def make_ds() -> DatasetFactory:
    return DatasetFactory()
