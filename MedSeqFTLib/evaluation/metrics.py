"""Dice and HD95 (millimetres) per class of one case, and their averages over cases.

The numbers come from MONAI (``DiceMetric``, ``HausdorffDistanceMetric(percentile=95)`` with
the voxel spacing); this module only decides the cases MONAI leaves undefined and how
results are averaged.

Empty masks (decided here, documented in docs/evaluation.md):

* prediction and reference both empty for a class: Dice 1, HD95 0 (the model correctly
  found nothing);
* exactly one of them empty: Dice 0, HD95 = the diagonal of the image in mm (the largest
  distance the grid can hold), so a model that stops predicting a class is penalised in the
  HD95 mean instead of silently dropping out of it. The case is flagged with ``"empty"``.

HD95 definition: MONAI's symmetric percentile Hausdorff distance, i.e. the larger of the two
directed 95th percentiles ``max(P95(d(pred->ref)), P95(d(ref->pred)))`` over surface voxels
(voxels removed by one binary erosion with 6-connectivity). MedPy's ``hd95`` instead takes
the 95th percentile of the pooled distances of both directions; the two agree exactly when
both directions give the same percentile and otherwise differ by the gap between the two
directed percentiles (see Testing/evaluation/test_metrics.py).
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["mask_metrics", "case_metrics", "summarize_cases", "image_diagonal_mm"]


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length of the grid's diagonal in mm: the HD95 given to a class missing on one side."""
    return float(np.linalg.norm(np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)))


def _check_pair(pred: np.ndarray, label: np.ndarray, spacing: Sequence[float]) -> None:
    if pred.shape != label.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from label shape {label.shape}")
    if pred.ndim != 3:
        raise ValueError(f"expected (X, Y, Z) volumes, got shape {pred.shape}")
    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise ValueError(f"spacing needs 3 positive numbers, got {tuple(spacing)}")


def mask_metrics(pred: np.ndarray, label: np.ndarray, spacing: Sequence[float]) -> dict:
    """Dice and HD95 of one binary class.

    Args:
        pred: (X, Y, Z) boolean prediction mask.
        label: (X, Y, Z) boolean reference mask.
        spacing: voxel size (x, y, z) in mm.

    Returns:
        ``{"dice": float in [0, 1], "hd95": float mm, "empty": None | "both" | "pred" | "label"}``.

    Raises:
        ValueError: shapes differ, not 3D, or bad spacing.
    """
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    pred = np.asarray(pred, dtype=bool)
    label = np.asarray(label, dtype=bool)
    _check_pair(pred, label, spacing)
    has_pred, has_label = bool(pred.any()), bool(label.any())
    if not has_pred and not has_label:
        return {"dice": 1.0, "hd95": 0.0, "empty": "both"}
    if not has_pred or not has_label:
        return {"dice": 0.0, "hd95": image_diagonal_mm(pred.shape, spacing), "empty": "label" if has_pred else "pred"}
    y_pred = torch.from_numpy(pred)[None, None].float()
    y = torch.from_numpy(label)[None, None].float()
    dice = DiceMetric(include_background=True, reduction="none")(y_pred, y)
    with warnings.catch_warnings():
        # MONAI 1.6 warns about its own internal use of a deprecated argument on every call
        warnings.simplefilter("ignore", FutureWarning)
        hd = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(
            y_pred, y, spacing=[float(s) for s in spacing])
    return {"dice": float(dice.reshape(-1)[0]), "hd95": float(hd.reshape(-1)[0]), "empty": None}


def case_metrics(pred: np.ndarray, label: np.ndarray, spacing: Sequence[float],
                 classes: Mapping[str, int]) -> dict:
    """Per-class Dice/HD95 of one case, plus their means over the foreground classes.

    Args:
        pred: (X, Y, Z) integer label volume (label values, not class indices).
        label: (X, Y, Z) integer reference volume on the same grid.
        spacing: voxel size (x, y, z) in mm.
        classes: label name -> value; the background (value 0) is skipped.

    Returns:
        ``{"classes": {name: mask_metrics(...)}, "dice": mean, "hd95": mean}``.

    Raises:
        ValueError: shapes differ, not 3D, bad spacing, or no foreground class.
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    _check_pair(pred, label, spacing)
    fg = {name: int(v) for name, v in classes.items() if int(v) != 0}
    if not fg:
        raise ValueError(f"no foreground class in {dict(classes)}")
    per_class = {name: mask_metrics(pred == v, label == v, spacing) for name, v in fg.items()}
    return {
        "classes": per_class,
        "dice": float(np.mean([m["dice"] for m in per_class.values()])),
        "hd95": float(np.mean([m["hd95"] for m in per_class.values()])),
    }


def _mean(values: list) -> Optional[float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def summarize_cases(cases: Mapping[str, dict]) -> dict:
    """Average ``case_metrics`` results over cases.

    Args:
        cases: case id -> ``case_metrics`` result.

    Returns:
        ``{"n_cases", "dice", "hd95", "classes": {name: {"dice", "hd95", "n_empty_pred",
        "n_empty_label"}}}``; the overall means are means of the per-case class means
        (``None`` when there are no cases).
    """
    names: list[str] = []
    for res in cases.values():
        for name in res["classes"]:
            if name not in names:
                names.append(name)
    classes = {}
    for name in names:
        vals = [res["classes"][name] for res in cases.values() if name in res["classes"]]
        classes[name] = {
            "dice": _mean([v["dice"] for v in vals]),
            "hd95": _mean([v["hd95"] for v in vals]),
            "n_empty_pred": sum(1 for v in vals if v["empty"] == "pred"),
            "n_empty_label": sum(1 for v in vals if v["empty"] == "label"),
        }
    return {
        "n_cases": len(cases),
        "dice": _mean([r["dice"] for r in cases.values()]),
        "hd95": _mean([r["hd95"] for r in cases.values()]),
        "classes": classes,
    }
