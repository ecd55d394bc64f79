"""FSEFT's anatomical size prior for transductive inference.

The target proportion of class c is the share of a volume's voxels labelled c, averaged over
the support masks (with five or more masks, the smallest and the largest are dropped first so
that one odd case does not move the prior). On the query volume(s) the predicted proportion is
the mean softmax probability of c. The penalty is a dead-zone L1 on their relative error:

    e_c = (target_c - predicted_c) / max(target_c, predicted_c)
    penalty = weight * mean_c max(0, |e_c| - margin)

exactly 0 while every class is within ``margin`` of its prior (FSEFT: weight 0.1, margin 0.3).
Classes absent from every support mask have no prior and are left out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["target_proportions", "predicted_proportions", "size_penalty", "TRIM_FROM"]

TRIM_FROM = 5  # support masks from which the extremes are dropped


def target_proportions(labels: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Per foreground class, the mean share of voxels labelled with it.

    Args:
        labels: support label maps of class indices, any shape each (e.g. (1, X, Y, Z)).
        n_classes: classes incl. background.

    Returns:
        float64 (n_classes - 1,) proportions in [0, 1] (index 0 = class 1).

    Raises:
        ValueError: no label map.
    """
    if not labels:
        raise ValueError("the size prior needs at least one support mask")
    shares = np.stack([[float(np.mean(np.asarray(lab) == c)) for c in range(1, n_classes)] for lab in labels])
    if len(labels) >= TRIM_FROM:
        shares = np.sort(shares, axis=0)[1:-1]
    return shares.mean(axis=0)


def predicted_proportions(probs):
    """``probs`` (B, n_classes, ...) softmax -> (n_classes - 1,) mean foreground probability over every voxel of the batch."""
    dims = [0] + list(range(2, probs.ndim))
    return probs.mean(dim=dims)[1:]


def size_penalty(predicted, target, margin: float = 0.3, weight: float = 0.1):
    """The dead-zone L1 penalty of the module docstring.

    Args:
        predicted: (n_classes - 1,) tensor of predicted proportions (with gradient).
        target: (n_classes - 1,) proportions (array or tensor); classes with target 0 are ignored.
        margin: tolerated relative error.
        weight: the penalty's weight.

    Returns:
        Scalar tensor (0 when no class has a prior).
    """
    import torch

    target = torch.as_tensor(np.asarray(target, dtype=np.float32), device=predicted.device)
    keep = target > 0
    if not bool(keep.any()):
        return predicted.sum() * 0.0
    p, t = predicted[keep], target[keep]
    err = (t - p) / torch.maximum(t, p).clamp_min(1e-12)
    return float(weight) * torch.relu(err.abs() - float(margin)).mean()
