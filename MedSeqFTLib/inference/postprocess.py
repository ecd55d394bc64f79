"""Post-processing of predicted label maps: keep the largest connected component per class.

nnU-Net decides on validation data, per class, whether removing all but the largest
connected component raises Dice; ``decide_keep_largest`` does the same on cases we pass in
(the task's training cases after training), and inference applies the decision.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["keep_largest_components", "decide_keep_largest", "MIN_GAIN"]

MIN_GAIN = 0.001  # mean Dice must rise by at least this (not just stay equal) to switch it on


def keep_largest_components(indices: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``indices`` (X, Y, Z) class map with every listed class reduced to its largest component
    (MONAI ``KeepLargestConnectedComponent``, full connectivity); removed voxels become 0."""
    if not classes:
        return indices
    from monai.transforms import KeepLargestConnectedComponent

    keep = KeepLargestConnectedComponent(applied_labels=[int(c) for c in classes], is_onehot=False, independent=True)
    out = keep(np.array(indices, copy=True)[None])  # MONAI writes into its input
    return np.asarray(out)[0].astype(indices.dtype, copy=False)


def _dice(pred: np.ndarray, gt: np.ndarray, c: int) -> float:
    p, g = pred == c, gt == c
    denom = int(p.sum()) + int(g.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(p, g).sum()) / denom


def decide_keep_largest(predictions: Sequence[np.ndarray], labels: Sequence[np.ndarray], n_classes: int) -> dict:
    """Per class, whether keeping only its largest component raises its mean Dice.

    Args:
        predictions: (X, Y, Z) class maps.
        labels: matching (X, Y, Z) ground-truth class maps.
        n_classes: including background.

    Returns:
        ``{"keep_largest": [class, ...], "dice_before": {c: d}, "dice_after": {c: d}}``.
    """
    before, after, chosen = {}, {}, []
    for c in range(1, int(n_classes)):
        b = [_dice(p, g, c) for p, g in zip(predictions, labels)]
        a = [_dice(keep_largest_components(p, [c]), g, c) for p, g in zip(predictions, labels)]
        before[c], after[c] = float(np.mean(b)) if b else 0.0, float(np.mean(a)) if a else 0.0
        if after[c] > before[c] + MIN_GAIN:
            chosen.append(c)
    return {"keep_largest": chosen, "dice_before": before, "dice_after": after}
