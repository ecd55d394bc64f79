"""Dice and HD95 against independent numpy/scipy computations on anisotropic grids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from MedSeqFTLib.evaluation.metrics import case_metrics, image_diagonal_mm, mask_metrics, summarize_cases

SPACING = (0.7, 1.3, 3.1)  # strongly anisotropic, like a thick-slice CT


def _directed_surface_distances(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """Distances (mm) from every surface voxel of ``a`` to the nearest surface voxel of ``b`` (MedPy's way)."""
    struct = ndimage.generate_binary_structure(3, 1)
    a_border = a ^ ndimage.binary_erosion(a, structure=struct, iterations=1)
    b_border = b ^ ndimage.binary_erosion(b, structure=struct, iterations=1)
    dt = ndimage.distance_transform_edt(~b_border, sampling=spacing)
    return dt[a_border]


def _medpy_hd95(a, b, spacing) -> float:
    return float(np.percentile(np.hstack([_directed_surface_distances(a, b, spacing),
                                          _directed_surface_distances(b, a, spacing)]), 95))


def _max_directed_hd95(a, b, spacing) -> float:
    return float(max(np.percentile(_directed_surface_distances(a, b, spacing), 95),
                     np.percentile(_directed_surface_distances(b, a, spacing), 95)))


def _blob(shape, centre, radii, spacing):
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def _shapes():
    shape = (40, 30, 16)
    ref = _blob(shape, (14.0, 19.0, 24.0), (8.0, 10.0, 14.0), SPACING)
    pred = _blob(shape, (16.5, 17.0, 27.0), (7.0, 11.0, 12.0), SPACING)
    rng = np.random.default_rng(3)
    # an irregular prediction: the ellipsoid plus a detached speck and random holes
    pred[30:33, 3:6, 2:4] = True
    pred &= rng.random(shape) > 0.03
    return ref, pred


def test_hd95_matches_independent_scipy_reference_on_anisotropic_spacing():
    ref, pred = _shapes()
    ours = mask_metrics(pred, ref, SPACING)
    # MONAI's definition, recomputed with scipy distance transforms: exact agreement
    assert ours["hd95"] == pytest.approx(_max_directed_hd95(pred, ref, SPACING), rel=1e-5)
    # MedPy's pooled percentile: within one voxel diagonal (the documented difference)
    voxel_diag = float(np.linalg.norm(SPACING))
    assert abs(ours["hd95"] - _medpy_hd95(pred, ref, SPACING)) <= voxel_diag
    # spacing really matters: isotropic 1 mm gives another number
    assert mask_metrics(pred, ref, (1.0, 1.0, 1.0))["hd95"] != pytest.approx(ours["hd95"], rel=1e-3)


def test_hd95_of_shifted_cube_is_the_shift_in_mm():
    a = np.zeros((20, 20, 20), bool)
    a[5:12, 5:12, 5:12] = True
    b = np.roll(a, 2, axis=2)  # shift by 2 voxels along z (3.1 mm each)
    assert mask_metrics(b, a, SPACING)["hd95"] == pytest.approx(2 * SPACING[2], rel=1e-5)


def test_dice_matches_numpy():
    ref, pred = _shapes()
    expected = 2.0 * np.logical_and(ref, pred).sum() / (ref.sum() + pred.sum())
    assert mask_metrics(pred, ref, SPACING)["dice"] == pytest.approx(expected, rel=1e-6)


def test_multiclass_case_metrics_and_means():
    ref1, pred1 = _shapes()
    label = np.zeros(ref1.shape, np.uint8)
    pred = np.zeros(ref1.shape, np.uint8)
    label[ref1] = 1
    pred[pred1] = 1
    label[30:36, 20:26, 10:14] = 3  # label value 3, not contiguous on purpose
    pred[31:36, 20:26, 10:14] = 3
    res = case_metrics(pred, label, SPACING, {"background": 0, "liver": 1, "tumour": 3})
    d1 = 2.0 * np.logical_and(label == 1, pred == 1).sum() / ((label == 1).sum() + (pred == 1).sum())
    d3 = 2.0 * 5 * 6 * 4 / (6 * 6 * 4 + 5 * 6 * 4)
    assert set(res["classes"]) == {"liver", "tumour"}
    assert res["classes"]["liver"]["dice"] == pytest.approx(d1, rel=1e-6)
    assert res["classes"]["tumour"]["dice"] == pytest.approx(d3, rel=1e-6)
    assert res["dice"] == pytest.approx((d1 + d3) / 2, rel=1e-6)
    assert res["hd95"] == pytest.approx((res["classes"]["liver"]["hd95"] + res["classes"]["tumour"]["hd95"]) / 2)


def test_empty_cases_are_explicit():
    shape = (10, 12, 8)
    empty = np.zeros(shape, bool)
    some = empty.copy()
    some[2:5, 3:6, 1:4] = True
    assert mask_metrics(empty, empty, SPACING) == {"dice": 1.0, "hd95": 0.0, "empty": "both"}
    diag = image_diagonal_mm(shape, SPACING)
    assert diag == pytest.approx(np.sqrt((10 * 0.7) ** 2 + (12 * 1.3) ** 2 + (8 * 3.1) ** 2))
    assert mask_metrics(empty, some, SPACING) == {"dice": 0.0, "hd95": pytest.approx(diag), "empty": "pred"}
    assert mask_metrics(some, empty, SPACING) == {"dice": 0.0, "hd95": pytest.approx(diag), "empty": "label"}


def test_summary_counts_empties_and_averages():
    shape = (10, 12, 8)
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 3:6, 1:4] = 1
    classes = {"background": 0, "a": 1}
    cases = {"c1": case_metrics(lab, lab, SPACING, classes),
             "c2": case_metrics(np.zeros_like(lab), lab, SPACING, classes)}
    s = summarize_cases(cases)
    assert s["n_cases"] == 2
    assert s["dice"] == pytest.approx(0.5)
    assert s["hd95"] == pytest.approx(image_diagonal_mm(shape, SPACING) / 2)
    assert s["classes"]["a"]["n_empty_pred"] == 1 and s["classes"]["a"]["n_empty_label"] == 0


def test_bad_arguments_raise():
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError):
        mask_metrics(a, np.zeros((4, 4, 5), bool), SPACING)
    with pytest.raises(ValueError):
        mask_metrics(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        case_metrics(a.astype(np.uint8), a.astype(np.uint8), SPACING, {"background": 0})
