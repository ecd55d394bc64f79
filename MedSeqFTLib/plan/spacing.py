"""Full-resolution target spacing: nnU-Net v2's rule, in our (x, y, z) RAS axis order.

The rule (``ExperimentPlanner.determine_fullres_target_spacing`` in
``nnunetv2/experiment_planning/experiment_planners/default_experiment_planner.py``):

1. target = the per-axis median of the cases' spacings (``np.percentile(..., 50)``);
2. the *worst* axis is the one with the largest median spacing; it is anisotropic when
   - its median spacing is more than ``anisotropy_threshold`` (3) times the largest median
     spacing of the other axes, **and**
   - its median size after cropping (voxels), times ``anisotropy_threshold``, is smaller than
     the smallest median size of the other axes;
3. for an anisotropic worst axis, its target is the 10th percentile of its spacings instead of
   the median; if that is below the largest median spacing of the other axes it becomes that
   spacing + 1e-5.

Every step works per axis or is symmetric in the axes, so the result does not depend on the
axis order: nnU-Net's (z, y, x) array order and our (x, y, z) give the same spacing, permuted.
When two axes share the largest median spacing neither can exceed the other by the threshold,
so ``argmax`` ties never matter.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["ANISOTROPY_THRESHOLD", "target_spacing"]

ANISOTROPY_THRESHOLD = 3.0  # nnunetv2.configuration.ANISO_THRESHOLD
_AXES = "xyz"


def _as_matrix(rows: Sequence, name: str) -> np.ndarray:
    try:
        arr = np.asarray([[float(v) for v in row] for row in rows], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a list of (x, y, z) number triples ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != 3:
        raise ValueError(f"{name}: expected a non-empty list of (x, y, z) triples, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))][:3].tolist()
        raise ValueError(f"{name}: every value must be finite and > 0, got {bad}")
    return arr


def target_spacing(spacings: Sequence[Sequence[float]], sizes_after_crop: Sequence[Sequence[int]],
                   anisotropy_threshold: float = ANISOTROPY_THRESHOLD) -> tuple[tuple[float, float, float], str]:
    """nnU-Net v2's full-resolution target spacing (rule in the module docstring).

    Args:
        spacings: per case, the (x, y, z) spacing in mm (a fingerprint's ``cases[i]["spacing"]``).
        sizes_after_crop: per case, the (x, y, z) size in voxels of the nonzero crop box
            (``cases[i]["size_after_crop"]``), in the same axis order as ``spacings``.
        anisotropy_threshold: nnU-Net's ``ANISO_THRESHOLD``.

    Returns:
        ``((x, y, z) spacing in mm, one-line reason)``, e.g. ``"median spacing of 8 cases"``.

    Raises:
        ValueError: empty or ragged inputs, a triple that is not 3 positive finite numbers,
            different numbers of spacings and sizes, or a threshold that is not > 1.
    """
    spacing = _as_matrix(spacings, "spacings")
    sizes = _as_matrix(sizes_after_crop, "sizes_after_crop")
    if spacing.shape[0] != sizes.shape[0]:
        raise ValueError(f"got {spacing.shape[0]} spacings but {sizes.shape[0]} sizes_after_crop; one of each per case")
    if not np.isfinite(anisotropy_threshold) or anisotropy_threshold <= 1:
        raise ValueError(f"anisotropy_threshold must be > 1, got {anisotropy_threshold!r}")

    n = spacing.shape[0]
    target = np.percentile(spacing, 50, 0)
    median_size = np.percentile(sizes, 50, 0)
    worst = int(np.argmax(target))
    others = [i for i in range(3) if i != worst]
    max_other_spacing = max(target[i] for i in others)
    min_other_size = min(median_size[i] for i in others)

    aniso_spacing = target[worst] > anisotropy_threshold * max_other_spacing
    aniso_voxels = median_size[worst] * anisotropy_threshold < min_other_size
    reason = f"median spacing of {n} case{'s' if n != 1 else ''}"
    if aniso_spacing and aniso_voxels:
        median = float(target[worst])
        p10 = float(np.percentile(spacing[:, worst], 10))
        axis = _AXES[worst]
        if p10 < max_other_spacing:
            target[worst] = max(max_other_spacing, p10) + 1e-5
            reason = (f"anisotropic: {axis} would use the 10th percentile of its spacings ({p10:.4g} mm) instead of "
                      f"the median ({median:.4g} mm), raised to just above the largest other axis "
                      f"({max_other_spacing:.4g} mm); other axes: {reason}")
        else:
            target[worst] = p10
            reason = (f"anisotropic: {axis} uses the 10th percentile of its spacings ({p10:.4g} mm) instead of "
                      f"the median ({median:.4g} mm); other axes: {reason}")
    return tuple(float(v) for v in target), reason
