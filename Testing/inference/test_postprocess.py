"""Keep-largest-component post-processing against scipy.ndimage.label (26-connectivity), and the
per-class decision that switches it on only where mean Dice rises."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from MedSeqFTLib.inference.postprocess import MIN_GAIN, decide_keep_largest, keep_largest_components

FULL = np.ones((3, 3, 3), bool)  # 26-connectivity


def _reference(indices, classes):
    """Independent keep-largest: scipy labelling per class, everything but the biggest -> 0."""
    out = indices.copy()
    for c in classes:
        comp, n = ndimage.label(indices == c, structure=FULL)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        out[(comp > 0) & (comp != 1 + int(np.argmax(sizes)))] = 0
    return out


def _volume():
    v = np.zeros((16, 16, 16), np.uint8)
    v[2:5, 2:5, 2:5] = 1          # class 1, 27 voxels
    v[5, 5, 5] = 1                # touches the cube only at a corner: same 26-component (28 voxels)
    v[10:12, 10:12, 10:12] = 1    # class 1, a separate 8-voxel blob
    v[12:14, 10:12, 10:12] = 2    # class 2 next to that blob (touching faces), 8 voxels
    v[2:4, 10:14, 2:4] = 2        # class 2, 16 voxels: its largest component
    v[13, 2, 13] = 3              # class 3, two single voxels far apart
    v[2, 13, 13] = 3
    return v


def test_keeps_the_largest_26_connected_component_of_listed_classes():
    v = _volume()
    expected = _reference(v, [1])
    out = keep_largest_components(v.copy(), [1])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == v.dtype and out.shape == v.shape
    assert int((out == 1).sum()) == 28          # the corner voxel stays: 26-connected to the cube
    assert out[5, 5, 5] == 1 and not out[10:12, 10:12, 10:12].any()
    # other classes untouched, even class 2 which has two components
    np.testing.assert_array_equal(out[v != 1], v[v != 1])
    assert int((out == 2).sum()) == 24 and int((out == 3).sum()) == 2


def test_each_listed_class_is_reduced_on_its_own():
    v = _volume()
    out = keep_largest_components(v.copy(), [1, 2])
    np.testing.assert_array_equal(out, _reference(v, [1, 2]))
    # class 2's 8-voxel blob touches class 1's small blob: still its own (smaller) class-2 component
    assert not out[12:14, 10:12, 10:12].any() and out[2:4, 10:14, 2:4].all()
    assert int((out == 3).sum()) == 2


def test_input_map_is_not_modified():
    v = _volume()
    original = v.copy()
    out = keep_largest_components(v, [1, 2])
    assert not np.shares_memory(out, v)
    np.testing.assert_array_equal(v, original)


def test_face_connectivity_would_have_split_the_corner_voxel():
    """The 26-vs-6 distinction above is real: with 6-connectivity the corner voxel is its own component."""
    _, n6 = ndimage.label(_volume() == 1)
    _, n26 = ndimage.label(_volume() == 1, structure=FULL)
    assert (n6, n26) == (3, 2)


def test_no_classes_or_absent_class_leaves_the_map_unchanged():
    v = _volume()
    np.testing.assert_array_equal(keep_largest_components(v, []), v)
    np.testing.assert_array_equal(keep_largest_components(v, [4]), v)


def _dice(p, g):
    denom = p.sum() + g.sum()
    return 1.0 if denom == 0 else 2.0 * np.logical_and(p, g).sum() / denom


def _cases():
    """Two cases. Class 1: ground truth one cube, prediction = cube + a spurious blob.
    Class 2: ground truth two separate cubes, prediction = exactly those (the second is real)."""
    gts, preds = [], []
    for shift in (0, 1):
        g = np.zeros((16, 16, 16), np.uint8)
        g[2 + shift:7 + shift, 2:7, 2:7] = 1       # 125 voxels
        g[10:13, 2:5, 10:13] = 2                   # 27 voxels
        g[2:4, 11:14, 11:14] = 2                   # 18 voxels, a real second component
        p = g.copy()
        p[12:15, 12:15, 2:5] = 1                   # spurious class-1 blob, 27 voxels
        p[2 + shift, 2:7, 2:7] = 0                 # a slightly eroded class-1 cube
        gts.append(g)
        preds.append(p)
    return preds, gts


def test_decide_switches_on_only_classes_whose_mean_dice_rises():
    preds, gts = _cases()
    before = {c: np.mean([_dice(p == c, g == c) for p, g in zip(preds, gts)]) for c in (1, 2)}
    after = {c: np.mean([_dice(_reference(p, [c]) == c, g == c) for p, g in zip(preds, gts)]) for c in (1, 2)}
    decision = decide_keep_largest([p.copy() for p in preds], gts, n_classes=3)
    for c in (1, 2):
        assert decision["dice_before"][c] == pytest.approx(before[c], abs=1e-12)
        assert decision["dice_after"][c] == pytest.approx(after[c], abs=1e-12)
    assert decision["dice_after"][1] > decision["dice_before"][1] + MIN_GAIN  # removing the blob helps
    assert decision["dice_before"][2] == 1.0 and decision["dice_after"][2] < 1.0  # removing the real part hurts
    assert decision["keep_largest"] == [1]


def test_decide_leaves_off_when_nothing_changes():
    _, gts = _cases()
    decision = decide_keep_largest([g.copy() for g in gts], gts, n_classes=3)  # perfect single-blob class 1, split class 2
    assert decision["keep_largest"] == []
    assert decision["dice_before"][1] == decision["dice_after"][1] == 1.0


def test_decide_on_a_class_never_present():
    preds, gts = _cases()
    decision = decide_keep_largest([p.copy() for p in preds], gts, n_classes=4)  # class 3 in neither: Dice 1 before and after
    assert decision["dice_before"][3] == decision["dice_after"][3] == 1.0
    assert decision["keep_largest"] == [1]


def test_decide_leaves_the_predictions_unchanged():
    preds, gts = _cases()
    originals = [p.copy() for p in preds]
    decide_keep_largest(preds, gts, n_classes=3)
    for p, o in zip(preds, originals):
        np.testing.assert_array_equal(p, o)
