"""The planner: nnU-Net's patch rule (fit_patch) and make_plan's normalisation and memory-bounded
patch on small hand-written fingerprints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import ArchConfig, PreprocessConfig, RecipeConfig, WorkspaceConfig
from MedSeqFTLib.plan.planner import BATCH_SIZE, MIN_PATCH, fit_patch, make_plan

torch.set_num_threads(1)
CPU = torch.device("cpu")
ARCH = ArchConfig("small_unet", feature_size=4)


# --- fit_patch ---------------------------------------------------------------------------------

def test_median_shape_rounded_up_when_it_fits():
    assert fit_patch((37, 50, 9), 8, 1e9, 16) == (40, 56, 16)  # 9 -> 16: the minimum side
    assert fit_patch((64.0, 32.0, 16.0), 16, 64 * 32 * 16, 16) == (64, 32, 16)  # exactly the budget


def test_axis_largest_relative_to_the_median_is_shrunk_first():
    # start (40, 40, 24): z is the smallest axis but the one most enlarged by rounding (24/20 = 1.2)
    assert fit_patch((40, 40, 20), 8, 38000, 16) == (40, 40, 16)
    # hand trace: (152,48,40) -> z32 -> y40 -> x144 -> x136 -> z24 -> x128 -> y32: 98304 <= 100000
    assert fit_patch((150, 45, 35), 8, 100_000, 16) == (128, 32, 24)


def test_elongated_median_stays_elongated():
    patch = fit_patch((320, 80, 80), 16, 96 ** 3 / 2, 16)
    assert np.prod(patch) <= 96 ** 3 / 2
    ratios = np.array(patch) / np.array([320, 80, 80])
    assert patch[0] > 3 * patch[1] and patch[1] == patch[2]
    assert ratios.max() - ratios.min() <= 16 / 80 + 1e-9  # within one divisor step of the same scale


def _greedy_ok(median, patch, div, min_side):
    """Every axis that was shrunk had, one step earlier, a ratio >= the ratio of every axis that
    can still shrink (ratios only fall, so this holds iff it was always the largest)."""
    shape = np.maximum(np.asarray(median, float), 1.0)
    start = np.maximum(np.ceil(shape / div) * div, min_side)
    p = np.asarray(patch, float)
    for i in range(3):
        if p[i] < start[i]:
            for j in range(3):
                if p[j] - div >= min_side and (p[i] + div) / shape[i] < p[j] / shape[j] - 1e-12:
                    return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_properties_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        div = int(rng.choice([8, 16, 32]))
        min_side = div * int(rng.integers(1, 4))
        median = rng.uniform(1, 300, size=3)
        max_voxels = float(rng.uniform(0.2, 2.0) * np.prod(median))
        patch = fit_patch(median, div, max_voxels, min_side)
        assert all(p % div == 0 and p >= min_side for p in patch), (median, div, min_side, patch)
        rounded = tuple(max(int(math.ceil(m / div)) * div, min_side) for m in median)
        if np.prod(rounded, dtype=float) <= max_voxels:
            assert patch == rounded
        else:
            assert all(p <= r for p, r in zip(patch, rounded))
        if min_side ** 3 <= max_voxels:  # reachable
            assert np.prod(patch, dtype=float) <= max_voxels
        else:
            assert patch == (min_side,) * 3
        assert _greedy_ok(median, patch, div, min_side)


def test_unreachable_budget_gives_the_minimum_patch():
    assert fit_patch((200, 200, 200), 8, 100.0, 16) == (16, 16, 16)


def test_min_side_not_a_multiple_of_the_divisor_is_rounded_up():
    patch = fit_patch((10, 10, 10), 16, 1e9, 24)
    assert all(p % 16 == 0 and p >= 24 for p in patch), patch


# --- make_plan ---------------------------------------------------------------------------------

def _fingerprint(modality, sizes=((40, 32, 24), (48, 40, 20), (22, 17, 13)),
                 spacings=((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0)), foreground=True):
    fg0 = {"mean": 40.123456, "std": 55.5, "median": 42.0, "min": -900.0, "max": 1200.0,
           "percentile_00_5": -120.25, "percentile_99_5": 310.75, "n_samples": 30000}
    fg1 = {"mean": 1.0, "std": 2.0, "median": 1.0, "min": 0.0, "max": 9.0,
           "percentile_00_5": 0.1, "percentile_99_5": 8.9, "n_samples": 30000}
    if not foreground:
        fg0 = {k: None for k in fg0}
    cases = [{"id": f"case_{i:03d}", "spacing": list(sp), "size": [s + 4 for s in sz], "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
              "size_after_crop": list(sz), "relative_size_after_crop": 0.9}
             for i, (sz, sp) in enumerate(zip(sizes, spacings))]
    return {"version": 1, "modality": modality, "n_cases": len(cases), "labels": {"background": 0, "liver": 1},
            "samples_per_case": 10000, "seed": 1234, "cases": cases,
            "channels": [{"foreground": fg0, "per_case": None}, {"foreground": fg1, "per_case": None}],
            "classes": {"liver": {"value": 1, "cases_present": len(cases)}}}


def _cfg(budget_mb=None):
    return WorkspaceConfig(arch=ARCH, recipe=RecipeConfig(memory_budget_mb=budget_mb))


def test_mr_plan_is_zscore_with_median_shaped_patch():
    plan = make_plan(_fingerprint("MR"), _cfg(), CPU)
    values = plan["values"]
    assert values["preprocess.normalization"] == "zscore" and "preprocess.ct_stats" not in values
    assert values["preprocess.spacing"] == [1.0, 1.0, 1.0]
    # the third case (spacing 2) counts at its resampled size 44x34x26; medians 44, 34, 24
    assert plan["median_shape"] == [44.0, 34.0, 24.0]
    assert values["preprocess.patch_size"] == [48, 40, 24]
    assert all(values[f"retention.{s}.batch_size"] == BATCH_SIZE for s in ("fft", "kd_fft", "lora_kd"))
    assert set(plan["reasons"]) >= {"preprocess.spacing", "preprocess.normalization", "preprocess.patch_size"}
    PreprocessConfig(**{k.split(".")[1]: v for k, v in values.items() if k.startswith("preprocess.")})


def test_ct_with_foundation_window_keeps_the_window():
    meta = {"preprocess": {"ct_window": [-175, 250]}}
    values = make_plan(_fingerprint("CT"), _cfg(), CPU, foundation_meta=meta)["values"]
    assert values["preprocess.normalization"] == "window"
    assert values["preprocess.ct_window"] == [-175.0, 250.0]
    assert "preprocess.ct_stats" not in values


def test_ct_without_foundation_metadata_uses_foreground_stats_of_channel_0():
    values = make_plan(_fingerprint("CT"), _cfg(), CPU)["values"]
    assert values["preprocess.normalization"] == "ct_zscore"
    assert values["preprocess.ct_stats"] == pytest.approx([-120.25, 310.75, 40.1235, 55.5], abs=1e-9)
    cfg = PreprocessConfig(normalization="ct_zscore", ct_stats=values["preprocess.ct_stats"])
    assert cfg.ct_stats[0] < cfg.ct_stats[1]


def test_ct_foundation_without_a_window_scheme_falls_back_to_ct_zscore():
    meta = {"preprocess": {"ct_window": [-175, 250], "normalization": "zscore"}}
    assert make_plan(_fingerprint("CT"), _cfg(), CPU, foundation_meta=meta)["values"]["preprocess.normalization"] == "ct_zscore"
    assert make_plan(_fingerprint("CT"), _cfg(), CPU, foundation_meta={})["values"]["preprocess.normalization"] == "ct_zscore"


def test_ct_without_foreground_intensities_is_refused():
    with pytest.raises(ValueError, match="no foreground intensities"):
        make_plan(_fingerprint("CT", foreground=False), _cfg(), CPU)


def test_memory_budget_bounds_the_patch():
    big = ((160, 160, 96), (150, 170, 90), (170, 150, 100))
    spacings = ((1.0, 1.0, 1.0),) * 3
    fp = _fingerprint("MR", sizes=big, spacings=spacings)
    free = make_plan(fp, _cfg(), CPU)
    small = make_plan(fp, _cfg(budget_mb=10.0), CPU)
    bpv = small["bytes_per_voxel"]
    assert bpv > 0 and bpv == free["bytes_per_voxel"]
    patch = small["values"]["preprocess.patch_size"]
    assert np.prod(patch) * bpv * BATCH_SIZE <= 10.0 * 2 ** 20
    assert all(p % 8 == 0 and p >= MIN_PATCH["small_unet"] for p in patch)
    assert np.prod(patch) < np.prod(free["values"]["preprocess.patch_size"])
    # the default CPU budget (400 MB) bounds the free plan as well, and the larger budget gives more
    assert np.prod(free["values"]["preprocess.patch_size"]) * bpv * BATCH_SIZE <= 400.0 * 2 ** 20
    assert "recipe.memory_budget_mb = 10 MB" in small["reasons"]["preprocess.patch_size"]
    # a budget the median image fits in leaves the rounded-up median
    roomy = make_plan(fp, _cfg(budget_mb=1e6), CPU)
    assert roomy["values"]["preprocess.patch_size"] == [160, 160, 96]
