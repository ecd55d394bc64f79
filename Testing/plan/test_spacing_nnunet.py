"""target_spacing: the rule on hand-made numbers, and parity with nnU-Net v2's own planner.

The parity test writes two tiny nnU-Net raw datasets, runs nnU-Net's real fingerprint
extraction and default ``ExperimentPlanner`` on them in a subprocess (run_nnunet_planner.py),
and checks that ``target_spacing`` on OUR fingerprint gives nnU-Net's 3d_fullres spacing. The
same subprocess also evaluates nnU-Net's ``determine_fullres_target_spacing`` on random
fingerprints (in nnU-Net's (z, y, x) order) to cover the branches the datasets do not reach.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from MedSeqFTLib.plan.fingerprint import compute_fingerprint
from MedSeqFTLib.plan.spacing import target_spacing

RUNNER = Path(__file__).with_name("run_nnunet_planner.py")
LABELS = {"background": 0, "organ": 1, "lesion": 2}


# ---- the rule on hand-made numbers -------------------------------------------------------------

def test_isotropic_data_takes_the_median():
    spacing, reason = target_spacing([(1.0, 0.8, 1.2), (1.2, 0.9, 1.0), (1.1, 1.0, 0.9)], [(50, 50, 50)] * 3)
    assert spacing == pytest.approx((1.1, 0.9, 1.0))
    assert reason == "median spacing of 3 cases"


def test_anisotropic_axis_takes_the_10th_percentile():
    z = [4.0, 4.5, 5.0, 5.5, 6.0]
    spacing, reason = target_spacing([(0.7, 0.7, s) for s in z], [(300, 300, 20)] * 5)
    assert spacing == pytest.approx((0.7, 0.7, np.percentile(z, 10)))
    assert spacing[2] == pytest.approx(4.2)
    assert reason.startswith("anisotropic: z uses the 10th percentile of its spacings (4.2 mm) instead of the median (5 mm)")


def test_10th_percentile_below_the_other_axes_is_raised_just_above_them():
    z = [0.5, 0.6] + [5.0] * 8  # median 5 (anisotropic), 10th percentile 0.59 < 1.0
    spacing, reason = target_spacing([(1.0, 0.9, s) for s in z], [(200, 200, 30)] * 10)
    assert spacing == pytest.approx((1.0, 0.9, 1.0 + 1e-5), abs=1e-12)
    assert "raised to just above the largest other axis (1 mm)" in reason


@pytest.mark.parametrize("sizes", [[(300, 300, 100)] * 3, [(300, 60, 20)] * 3])  # voxels not anisotropic enough
def test_anisotropic_spacing_alone_keeps_the_median(sizes):
    spacing, reason = target_spacing([(0.7, 0.7, 5.0), (0.7, 0.7, 4.0), (0.7, 0.7, 6.0)], sizes)
    assert spacing == pytest.approx((0.7, 0.7, 5.0))
    assert reason == "median spacing of 3 cases"


def test_exactly_three_times_is_not_anisotropic():
    spacing, _ = target_spacing([(1.0, 1.0, 3.0), (1.0, 1.0, 3.0)], [(300, 300, 10)] * 2)
    assert spacing == pytest.approx((1.0, 1.0, 3.0))


def test_rule_does_not_depend_on_the_axis_order():
    rng = np.random.default_rng(0)
    spacings = np.c_[rng.uniform(0.6, 0.8, 9), rng.uniform(0.6, 0.8, 9), rng.uniform(3, 7, 9)]
    sizes = np.c_[rng.integers(200, 300, 9), rng.integers(200, 300, 9), rng.integers(10, 40, 9)]
    base, _ = target_spacing(spacings.tolist(), sizes.tolist())
    for perm in ([2, 1, 0], [1, 2, 0], [0, 2, 1]):
        got, reason = target_spacing(spacings[:, perm].tolist(), sizes[:, perm].tolist())
        assert got == pytest.approx(tuple(np.asarray(base)[perm]))
        assert reason.startswith(f"anisotropic: {'xyz'[perm.index(2)]} uses")


@pytest.mark.parametrize("spacings, sizes, threshold, match", [
    ([], [], 3.0, "non-empty"),
    ([(1.0, 1.0)], [(10, 10)], 3.0, r"triples, got shape \(1, 2\)"),
    ([(1.0, 1.0, 1.0), (1.0, 1.0)], [(10, 10, 10)] * 2, 3.0, "triples"),
    ([(1.0, 0.0, 1.0)], [(10, 10, 10)], 3.0, "finite and > 0"),
    ([(1.0, 1.0, 1.0)], [(10, 10, 10)] * 2, 3.0, "1 spacings but 2 sizes_after_crop"),
    ([(1.0, 1.0, 1.0)], [(10, 10, 10)], 1.0, "anisotropy_threshold must be > 1"),
    ([("a", 1.0, 1.0)], [(10, 10, 10)], 3.0, "number triples"),
])
def test_bad_arguments(spacings, sizes, threshold, match):
    with pytest.raises(ValueError, match=match):
        target_spacing(spacings, sizes, threshold)


# ---- parity with nnU-Net v2 --------------------------------------------------------------------

def _volume(rng, shape_xyz, margin_xyz, ct: bool):
    """(z, y, x) float32: zeros outside a box (cut by ``margin_xyz`` at the low end), a hole in it."""
    shape = tuple(shape_xyz)[::-1]
    arr = np.zeros(shape, np.float32)
    box = tuple(slice(m, s) for m, s in zip(margin_xyz[::-1], shape))
    arr[box] = rng.normal(40.0 if ct else 300.0, 25.0, size=arr[box].shape).astype(np.float32)
    if not ct:
        arr[box] = np.abs(arr[box]) + 1.0
    center = [(m + s) // 2 for m, s in zip(margin_xyz[::-1], shape)]
    arr[center[0], center[1] - 1:center[1] + 1, center[2] - 1:center[2] + 1] = 0.0  # a hole nnU-Net fills
    return arr


def _label(rng, shape_xyz, margin_xyz):
    shape = tuple(shape_xyz)[::-1]
    z, y, x = np.indices(shape)
    lo = np.asarray(margin_xyz[::-1])
    c = (lo + np.asarray(shape)) / 2 + rng.uniform(-1, 1, 3)
    r = np.sqrt(sum(((g - ci) / (s - l)) ** 2 for g, ci, s, l in zip((z, y, x), c, shape, lo)))
    lab = np.zeros(shape, np.uint8)
    lab[r < 0.35] = 1
    lab[r < 0.15] = 2
    return lab


def _write_dataset(raw: Path, ds_id: int, name: str, spacings, shapes, margins, ct: bool, make_vol, seed: int):
    """An nnU-Net v2 raw dataset (identity direction, so nnU-Net's axes are ours reversed)."""
    root = raw / f"Dataset{ds_id:03d}_{name}"
    rng = np.random.default_rng(seed)
    cases = []
    for i, (sp, sh, mg) in enumerate(zip(spacings, shapes, margins)):
        cases.append(make_vol.case(root, f"{name.lower()}_{i:03d}", [_volume(rng, sh, mg, ct)], _label(rng, sh, mg),
                                   spacing=sp))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT" if ct else "MR"}, "labels": LABELS, "numTraining": len(cases),
        "file_ending": ".nii.gz", "name": name}))
    return cases


def _rule_cases(rng, n: int):
    """Random fingerprints (nnU-Net order) that reach every branch of the rule."""
    out = []
    for k in range(n):
        n_cases = int(rng.integers(1, 12))
        base = rng.uniform(0.5, 1.5, 3)
        axis = int(rng.integers(0, 3))
        base[axis] *= [1.0, 2.9, 3.2, 6.0][k % 4]
        spacings = base * rng.uniform(0.85, 1.15, (n_cases, 3))
        if k % 5 == 0:  # a few thin-slice cases pull the 10th percentile below the other axes
            spacings[: max(1, n_cases // 4), axis] = base[(axis + 1) % 3] * 0.5
        sizes = rng.integers(150, 400, (n_cases, 3))
        sizes[:, axis] = rng.integers(8, 40, n_cases) if k % 3 else rng.integers(100, 200, n_cases)
        out.append({"spacings": spacings.round(4).tolist(), "shapes_after_crop": sizes.tolist()})
    return out


@pytest.mark.skipif(importlib.util.find_spec("nnunetv2") is None,
                    reason="nnunetv2 is not installed (pip install nnunetv2, part of the 'test' extra)")
def test_target_spacing_matches_nnunet_planner(tmp_path, make_vol):
    rng = np.random.default_rng(7)
    raw = tmp_path / "nnUNet_raw"
    # isotropic, spacings 0.8-1.2 mm; x has the largest median so nnU-Net transposes (z, y, x) -> (x, z, y)
    n = 6
    iso = _write_dataset(
        raw, 901, "Iso",
        spacings=np.c_[rng.uniform(1.0, 1.2, n), rng.uniform(0.8, 1.0, n), rng.uniform(0.9, 1.1, n)].round(3),
        shapes=rng.integers(18, 26, (n, 3)), margins=rng.integers(0, 4, (n, 3)), ct=False, make_vol=make_vol, seed=1)
    # anisotropic CT: ~0.7 mm in-plane, 4-6 mm slices, few slices
    aniso = _write_dataset(
        raw, 902, "Aniso",
        spacings=np.c_[np.full(n, 0.7), np.full(n, 0.7), rng.uniform(4.0, 6.0, n)].round(3),
        shapes=np.c_[rng.integers(36, 44, (n, 2)), rng.integers(6, 10, n)],
        margins=np.c_[rng.integers(0, 3, (n, 2)), np.zeros(n, int)], ct=True, make_vol=make_vol, seed=2)

    samples = 2000
    ours = {901: compute_fingerprint(iso, "MR", LABELS, samples_per_case=samples),
            902: compute_fingerprint(aniso, "CT", LABELS, samples_per_case=samples)}
    rule_cases = _rule_cases(np.random.default_rng(11), 40)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"datasets": [{"id": d, "samples_per_case": samples} for d in ours],
                                   "rule_cases": rule_cases}))
    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(tmp_path / "nnUNet_preprocessed"),
               nnUNet_results=str(tmp_path / "nnUNet_results"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(RUNNER), str(request)], env=env, capture_output=True, text=True,
                          timeout=240)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("\nRESULT ", 1)[1])

    for ds_id, fp in ours.items():
        theirs = result["datasets"][str(ds_id)]
        # nnU-Net's fingerprint is in (z, y, x) array order: ours reversed (identity direction)
        np.testing.assert_allclose(theirs["fingerprint"]["spacings"], [c["spacing"][::-1] for c in fp["cases"]],
                                   rtol=0, atol=1e-9)
        assert theirs["fingerprint"]["shapes_after_crop"] == [c["size_after_crop"][::-1] for c in fp["cases"]]
        their_fg = theirs["fingerprint"]["foreground_intensity_properties_per_channel"]["0"]
        our_fg = {k: v for k, v in fp["channels"][0]["foreground"].items() if k != "n_samples"}
        assert our_fg == pytest.approx(their_fg, rel=1e-6)

        plans = theirs["plans"]
        transposed = plans["configurations"]["3d_fullres"]["spacing"]
        zyx = [0.0] * 3
        for i, axis in enumerate(plans["transpose_forward"]):
            zyx[axis] = transposed[i]
        nnunet_xyz = tuple(zyx[::-1])
        spacing, reason = target_spacing([c["spacing"] for c in fp["cases"]], [c["size_after_crop"] for c in fp["cases"]])
        print(f"\nDataset {ds_id}: ours {spacing} ({reason}); nnU-Net {nnunet_xyz} "
              f"(transpose_forward {plans['transpose_forward']}); nnU-Net fingerprint "
              f"{theirs['seconds']['fingerprint']:.1f} s, planning {theirs['seconds']['planning']:.1f} s")
        assert spacing == pytest.approx(nnunet_xyz, abs=1e-5)

    assert result["datasets"]["901"]["plans"]["transpose_forward"] == [2, 0, 1]  # the conversion was exercised
    assert target_spacing([c["spacing"] for c in ours[902]["cases"]],
                          [c["size_after_crop"] for c in ours[902]["cases"]])[1].startswith("anisotropic: z uses")

    branches = set()
    for case, nnunet_zyx in zip(rule_cases, result["rule"]):
        spacing, reason = target_spacing([s[::-1] for s in case["spacings"]], [s[::-1] for s in case["shapes_after_crop"]])
        assert spacing == pytest.approx(tuple(nnunet_zyx[::-1]), abs=1e-9), (case, reason)
        branches.add(reason.split(" ")[0] + (" raised" if "raised" in reason else ""))
    assert branches == {"median", "anisotropic:", "anisotropic: raised"}
    print(f"nnU-Net subprocess wall time {wall:.1f} s")
