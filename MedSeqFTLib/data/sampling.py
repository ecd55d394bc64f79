"""Training patches from prepared cases.

``PatchSampler`` draws labelled patches the way nnU-Net does: a share ``pos_fraction`` of the
patches is centred on a voxel of a class chosen *uniformly among the classes present in the
case* (so a class 100x smaller than another is the centre as often), the others are placed
uniformly at random. Each patch then goes through the optional augmentation
(``data.augment.Augmenter``). The voxel indices of every class are computed once per case.

Batch ``i`` depends only on ``(seed, i)`` (its own ``np.random.RandomState``), not on the
batches before it: a resumed stage continues the exact stream, loader worker processes can
build batches in any order, and every strategy of a benchmark that uses the same seed sees the
same task patches. ``sample_patches`` draws uniformly placed patches from unlabelled volumes
(SSL pre-training and MDS scoring).
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from .preprocess import PreparedCase

__all__ = ["PatchSampler", "sample_patches", "crop", "MAX_INDICES", "batch_seed"]

# enough candidate centres per case and class; caps memory for large volumes (a 512x512x300
# CT has 78 M background voxels, 630 MB of int64 indices)
MAX_INDICES = 200_000


def batch_seed(seed: int, index: int) -> int:
    """The 32-bit seed of batch ``index`` of a stream seeded with ``seed`` (stable across runs)."""
    digest = hashlib.sha256(f"{int(seed)}:batch:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


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


def crop(array: np.ndarray, centre: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The (C, *size) box of a (C, X, Y, Z) array centred on ``centre``; outside the array is 0.

    The box starts at ``centre - size // 2`` on each axis (MONAI's ``SpatialCrop`` convention).
    """
    lo = [int(c) - int(s) // 2 for c, s in zip(centre, size)]
    src, dst, pad = [slice(None)], [slice(None)], False
    for a, s, n in zip(lo, size, array.shape[1:]):
        a0, a1 = max(a, 0), min(a + int(s), n)
        src.append(slice(a0, max(a1, a0)))
        dst.append(slice(a0 - a, a0 - a + max(a1 - a0, 0)))
        pad |= a < 0 or a + int(s) > n
    if not pad:
        return array[tuple(src)]
    out = np.zeros((array.shape[0],) + tuple(int(s) for s in size), dtype=array.dtype)
    out[tuple(dst)] = array[tuple(src)]
    return out


class PatchSampler:
    """Batches of (image, label) patches with class-aware foreground oversampling.

    Args:
        cases: prepared cases with labels (values 0..N-1).
        patch_size: (x, y, z) voxels.
        batch_size: patches per batch.
        pos_fraction: probability that a patch is centred on a voxel of a class chosen
            uniformly among the foreground classes present in its case (nnU-Net forces one of
            its two patches per batch, i.e. 0.5); the rest are placed uniformly at random.
            Cases without foreground always give random patches.
        seed: the stream's seed; batch ``i`` depends only on ``(seed, i)``.
        augment: an ``data.augment.Augmenter`` applied to each patch, or ``None``.

    Raises:
        ValueError: no cases, a case without a label, bad sizes or fraction.

    Iterating (or ``next_batch()``) yields batches 0, 1, 2, ... forever; ``batch_at(i)`` gives any one.
    """

    def __init__(self, cases: Sequence[PreparedCase], patch_size, batch_size: int, pos_fraction: float = 0.5,
                 seed: int = 0, augment=None):
        if not cases:
            raise ValueError("PatchSampler needs at least one case")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= float(pos_fraction) <= 1.0:
            raise ValueError(f"pos_fraction must lie in [0, 1], got {pos_fraction}")
        self.patch = _check_patch(patch_size)
        self.batch_size = int(batch_size)
        self.pos_fraction = float(pos_fraction)
        self.seed = int(seed)
        self.augment = augment
        self._next = 0
        index_rng = np.random.RandomState(batch_seed(self.seed, -1))
        self._images, self._labels, self._classes = [], [], []
        for i, case in enumerate(cases):
            if case.label is None:
                raise ValueError(f"case {i} has no label; use sample_patches for unlabelled volumes")
            image, label = _pad_to(case.image, self.patch), _pad_to(case.label, self.patch)
            flat = label[0].ravel()
            classes = {}
            for value in np.unique(flat):
                if value == 0:
                    continue
                idx = np.flatnonzero(flat == value)
                if len(idx) > MAX_INDICES:
                    idx = np.sort(index_rng.choice(idx, MAX_INDICES, replace=False))
                classes[int(value)] = idx
            self._images.append(image)
            self._labels.append(label)
            self._classes.append(classes)

    def centre(self, rng: np.random.RandomState, k: int) -> tuple[tuple, int]:
        """A patch centre in case ``k`` and the class it was chosen for (0: a random centre)."""
        shape = self._labels[k].shape[1:]
        classes = self._classes[k]
        if classes and rng.random_sample() < self.pos_fraction:
            value = sorted(classes)[rng.randint(len(classes))]
            idx = classes[value]
            voxel = np.unravel_index(int(idx[rng.randint(len(idx))]), shape)
            # keep the patch inside the (padded) volume, as MONAI's crop-centre helpers do
            centre = tuple(int(min(max(v, p // 2), n - (p - p // 2))) for v, p, n in zip(voxel, self.patch, shape))
            return centre, value
        centre = tuple(int(rng.randint(p // 2, n - (p - p // 2) + 1)) for p, n in zip(self.patch, shape))
        return centre, 0

    def sample(self, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray, int]:
        """One (image (C, x, y, z), label (1, x, y, z), centre class) patch."""
        k = int(rng.randint(len(self._images)))
        centre, value = self.centre(rng, k)
        if self.augment is None:
            return crop(self._images[k], centre, self.patch), crop(self._labels[k], centre, self.patch), value
        image, label = self.augment(self._images[k], self._labels[k], centre, self.patch, rng)
        return image, label, value

    def batch_at(self, index: int) -> dict:
        """Batch number ``index`` of this stream.

        Returns:
            ``{"image": float32 Tensor (B, C, x, y, z), "label": int64 Tensor (B, 1, x, y, z),
            "centre_class": int64 Tensor (B,)}`` (the class each patch was centred on, 0 = random).
        """
        import torch

        rng = np.random.RandomState(batch_seed(self.seed, index))
        patches = [self.sample(rng) for _ in range(self.batch_size)]
        image = torch.from_numpy(np.stack([p[0] for p in patches]).astype(np.float32, copy=False))
        label = torch.from_numpy(np.stack([p[1] for p in patches]).astype(np.int64))
        return {"image": image, "label": label, "centre_class": torch.tensor([p[2] for p in patches])}

    def next_batch(self) -> dict:
        """The next batch of the stream (0, 1, 2, ...)."""
        out = self.batch_at(self._next)
        self._next += 1
        return out

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
