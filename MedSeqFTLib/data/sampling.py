"""Training patches from prepared cases.

``PatchSampler`` draws labelled patches balanced between foreground and background centres, in
the manner of MONAI's ``RandCropByPosNegLabeld`` and with its own utilities
(``map_binary_to_indices``, ``generate_pos_neg_label_crop_centers``, ``SpatialCrop``), but with
the voxel indices computed once per case instead of once per patch. ``sample_patches`` draws
uniformly placed patches from unlabelled volumes (SSL pre-training and MDS scoring).

Everything is driven by one ``np.random.RandomState`` seeded by the caller, so a seed fixes the
whole sequence of batches.
"""

from __future__ import annotations

import warnings
from typing import Iterator, Sequence, Union

import numpy as np

from .preprocess import PreparedCase

__all__ = ["PatchSampler", "sample_patches", "MAX_INDICES"]

# enough candidate centres per case and class; caps memory for large volumes (a 512x512x300
# CT has 78 M background voxels, 630 MB of int64 indices)
MAX_INDICES = 200_000


def _check_patch(patch_size) -> tuple:
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or min(patch) < 1:
        raise ValueError(f"patch_size needs 3 positive integers, got {patch_size}")
    return patch


def _pad_to(array: np.ndarray, patch: tuple) -> np.ndarray:
    """Zero-pad the spatial axes of a (C, X, Y, Z) array to at least ``patch`` (symmetrically)."""
    pads = [(0, 0)] + [((max(p - s, 0)) // 2, max(p - s, 0) - max(p - s, 0) // 2) for s, p in zip(array.shape[1:], patch)]
    if any(a or b for a, b in pads):
        return np.pad(array, pads)
    return array


class PatchSampler:
    """Batches of (image, label) patches; a share ``pos_fraction`` is centred on foreground.

    Args:
        cases: prepared cases with labels.
        patch_size: (x, y, z) voxels.
        batch_size: patches per batch.
        pos_fraction: probability that a patch is centred on a labelled (non-zero) voxel; cases
            without foreground always give background-centred patches.
        seed: fixes every draw (case choice, foreground/background, centre).

    Raises:
        ValueError: no cases, a case without a label, bad sizes or fraction.

    Iterating yields ``next_batch()`` forever.
    """

    def __init__(self, cases: Sequence[PreparedCase], patch_size, batch_size: int, pos_fraction: float = 0.5,
                 seed: int = 0):
        from monai.transforms.utils import map_binary_to_indices

        if not cases:
            raise ValueError("PatchSampler needs at least one case")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= float(pos_fraction) <= 1.0:
            raise ValueError(f"pos_fraction must lie in [0, 1], got {pos_fraction}")
        self.patch = _check_patch(patch_size)
        self.batch_size = int(batch_size)
        self.pos_fraction = float(pos_fraction)
        self.rand = np.random.RandomState(seed)
        self._images, self._labels, self._fg, self._bg = [], [], [], []
        for i, case in enumerate(cases):
            if case.label is None:
                raise ValueError(f"case {i} has no label; use sample_patches for unlabelled volumes")
            image, label = _pad_to(case.image, self.patch), _pad_to(case.label, self.patch)
            fg, bg = map_binary_to_indices(label > 0)  # (1, X, Y, Z): MONAI reduces over the channel
            self._images.append(image)
            self._labels.append(label)
            self._fg.append(self._subsample(np.asarray(fg)))
            self._bg.append(self._subsample(np.asarray(bg)))

    def _subsample(self, indices: np.ndarray) -> np.ndarray:
        if len(indices) <= MAX_INDICES:
            return indices
        return np.sort(self.rand.choice(indices, MAX_INDICES, replace=False))

    def _patch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        from monai.transforms import SpatialCrop
        from monai.transforms.utils import generate_pos_neg_label_crop_centers

        fg, bg = self._fg[k], self._bg[k]
        pos = 1.0 if len(bg) == 0 else (0.0 if len(fg) == 0 else self.pos_fraction)
        with warnings.catch_warnings():
            # MONAI warns on every patch of a case without foreground; that case is legitimate
            warnings.simplefilter("ignore", UserWarning)
            centre = generate_pos_neg_label_crop_centers(
                self.patch, 1, pos, self._labels[k].shape[1:], fg, bg, self.rand)[0]
        crop = SpatialCrop(roi_center=[int(c) for c in centre], roi_size=self.patch)
        return np.asarray(crop(self._images[k])), np.asarray(crop(self._labels[k]))

    def next_batch(self) -> dict:
        """One batch.

        Returns:
            ``{"image": float32 Tensor (B, C, x, y, z), "label": int64 Tensor (B, 1, x, y, z)}``.
        """
        import torch

        picks = self.rand.randint(0, len(self._images), size=self.batch_size)
        pairs = [self._patch(int(k)) for k in picks]
        image = torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.float32, copy=False))
        label = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
        return {"image": image, "label": label}

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        return self.next_batch()


def sample_patches(volumes: Sequence[Union[PreparedCase, np.ndarray]], patch_size, count: int,
                   seed: Union[int, np.random.RandomState] = 0):
    """Uniformly placed patches from unlabelled volumes (labels, if any, are ignored).

    Args:
        volumes: ``PreparedCase``s or (C, X, Y, Z) arrays; each patch picks a volume at random.
        patch_size: (x, y, z) voxels; smaller volumes are zero-padded first.
        count: number of patches.
        seed: an int, or a ``RandomState`` to continue an existing stream.

    Returns:
        float32 Tensor (count, C, x, y, z).

    Raises:
        ValueError: no volumes, a non-4D array, ``count`` < 1, or volumes with different channels.
    """
    import torch
    from monai.transforms import RandSpatialCrop

    if not volumes:
        raise ValueError("sample_patches needs at least one volume")
    if int(count) < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    patch = _check_patch(patch_size)
    arrays = []
    for i, v in enumerate(volumes):
        a = v.image if isinstance(v, PreparedCase) else np.asarray(v)
        if a.ndim != 4:
            raise ValueError(f"volume {i}: expected (C, X, Y, Z), got shape {a.shape}")
        arrays.append(a)
    if len({a.shape[0] for a in arrays}) > 1:
        raise ValueError(f"volumes have different channel counts: {sorted({a.shape[0] for a in arrays})}")
    rand = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    cropper = RandSpatialCrop(roi_size=patch, random_size=False)
    cropper.set_random_state(state=rand)
    out = []
    for k in rand.randint(0, len(arrays), size=int(count)):
        out.append(np.asarray(cropper(_pad_to(arrays[int(k)], patch))))
    return torch.from_numpy(np.stack(out).astype(np.float32, copy=False))
