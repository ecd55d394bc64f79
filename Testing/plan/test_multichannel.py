"""Channels per task below the workspace: fingerprint, plan and preparation of 2-channel datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import ArchConfig, PreprocessConfig, RecipeConfig, WorkspaceConfig
from MedSeqFTLib.data.datasets import read_dataset
from MedSeqFTLib.data.phantoms_multimodal import generate_ctpet_phantoms, generate_mr2_phantoms
from MedSeqFTLib.data.preprocess import prepare_case
from MedSeqFTLib.data.validate import validate_dataset
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.plan.fingerprint import compute_fingerprint
from MedSeqFTLib.plan.planner import make_plan
from MedSeqFTLib.plan.task_plan import fingerprint_task

torch.set_num_threads(1)
CPU = torch.device("cpu")
SHAPE = (12, 11, 10)
LABELS = {"background": 0, "organ": 1}
CFG = WorkspaceConfig(arch=ArchConfig("small_unet", feature_size=4), recipe=RecipeConfig())
BYTES = 1000.0  # activation bytes per voxel: given, so no backbone is measured here


def _ct(seed, offset=0.0):
    rng = np.random.default_rng(seed)
    arr = np.full(SHAPE, -1000.0, np.float32)
    arr[2:10, 2:9, 2:8] = rng.normal(40.0 + offset, 10.0, size=(8, 7, 6))
    return arr


def _pet(seed):
    rng = np.random.default_rng(seed)
    arr = np.zeros(SHAPE, np.float32)
    arr[2:10, 2:9, 2:8] = rng.uniform(1.0, 3.0, size=(8, 7, 6))
    return arr


def _label():
    lab = np.zeros(SHAPE, np.uint8)
    lab[4:8, 3:7, 3:7] = 1
    return lab


def _cases(tmp_path, make_vol, second):
    return [make_vol.case(tmp_path, f"c{i}", [_ct(i), second(i)], _label()) for i in range(2)]


def test_fingerprint_per_channel_modalities(tmp_path, make_vol):
    cases = _cases(tmp_path, make_vol, _pet)
    fp = compute_fingerprint(cases, "MR", LABELS, samples_per_case=200, channel_modalities=["CT", "pet"])
    assert fp["channel_modalities"] == ["CT", "PET"] and "ct_foreground" not in fp
    ct, pet = fp["channels"]
    assert ct["per_case"] is None  # CT: nnU-Net's global statistics only
    assert [p["id"] for p in pet["per_case"]] == ["c0", "c1"] and pet["per_case"][0]["mean"] > 0
    assert ct["foreground"]["mean"] == pytest.approx(40.0, abs=3) and pet["foreground"]["max"] <= 3.0
    # no list: every channel takes the task's modality (the single-modality behaviour of before)
    assert compute_fingerprint(cases, "MR", LABELS, samples_per_case=200)["channel_modalities"] == ["MR", "MR"]
    with pytest.raises(InputError, match=r"c0_0000.nii.gz: case 'c0' has 2 channel file\(s\) but 3 channel modalities"):
        compute_fingerprint(cases, "MR", LABELS, channel_modalities=["CT", "PET", "MR"])
    with pytest.raises(InputError, match="unknown modality 'XRAY'"):
        compute_fingerprint(cases, "MR", LABELS, channel_modalities=["CT", "XRAY"])


def test_two_ct_phases_pool_their_statistics(tmp_path, make_vol):
    cases = _cases(tmp_path, make_vol, lambda i: _ct(10 + i, offset=150.0))  # an enhanced phase
    fp = compute_fingerprint(cases, "CT", LABELS, samples_per_case=200, channel_modalities=["CT", "CT"])
    pooled, native, arterial = fp["ct_foreground"], fp["channels"][0]["foreground"], fp["channels"][1]["foreground"]
    assert pooled["n_samples"] == native["n_samples"] + arterial["n_samples"]
    assert native["mean"] < pooled["mean"] < arterial["mean"]
    # the native phase's own percentiles would clip the enhanced phase at about 65 HU; the pooled ones do not
    assert pooled["percentile_99_5"] > native["percentile_99_5"] + 100
    plan = make_plan(fp, CFG, CPU, bytes_per_voxel=BYTES)
    low, high, mean, std = plan["values"]["preprocess.ct_stats"]
    assert mean == pytest.approx(pooled["mean"], abs=1e-3) and high == pytest.approx(pooled["percentile_99_5"], abs=1e-3)
    assert "pooled over the 2 CT channels" in plan["channels"][1]["reason"]


def _fp(modalities):
    fg_ct = {"mean": 40.0, "std": 10.0, "median": 40.0, "min": -50.0, "max": 90.0,
             "percentile_00_5": -20.0, "percentile_99_5": 80.0, "n_samples": 100}
    fg_pet = {"mean": 2.0, "std": 0.5, "median": 2.0, "min": 0.5, "max": 4.0,
              "percentile_00_5": 0.7, "percentile_99_5": 3.8, "n_samples": 100}
    case = {"id": "c", "spacing": [1.0, 1.0, 1.0], "size": [20, 20, 20], "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
            "size_after_crop": [16, 16, 16], "relative_size_after_crop": 0.5}
    return {"version": 1, "modality": "MR", "channel_modalities": modalities, "n_cases": 1, "labels": LABELS,
            "cases": [case], "classes": {},
            "channels": [{"foreground": fg_ct if m == "CT" else fg_pet, "per_case": None} for m in modalities]}


def test_plan_records_a_normalisation_per_channel():
    plan = make_plan(_fp(["PET", "CT"]), CFG, CPU, bytes_per_voxel=BYTES, channel_names={"0": "PT", "1": "CT"})
    values = plan["values"]
    assert values["preprocess.normalization"] == "ct_zscore"
    assert values["preprocess.ct_stats"] == [-20.0, 80.0, 40.0, 10.0]  # the CT channel's, wherever it is
    assert [(c["index"], c["name"], c["modality"], c["normalization"]) for c in plan["channels"]] == \
        [(0, "PT", "PET", "zscore"), (1, "CT", "CT", "ct_zscore")]
    assert "uptake" in plan["channels"][0]["reason"] and "nnU-Net's CT scheme" in plan["channels"][1]["reason"]
    assert "per channel: 0 PT (PET) zscore, 1 CT (CT) ct_zscore" in plan["reasons"]["preprocess.normalization"]
    window = make_plan(_fp(["CT", "PET"]), CFG, CPU, {"preprocess": {"ct_window": [-175, 250]}}, bytes_per_voxel=BYTES)
    assert window["values"]["preprocess.normalization"] == "window"
    assert [c["normalization"] for c in window["channels"]] == ["window", "zscore"]
    mr = make_plan(_fp(["MR", "MR"]), CFG, CPU, bytes_per_voxel=BYTES)
    assert mr["values"]["preprocess.normalization"] == "zscore" and "preprocess.ct_stats" not in mr["values"]
    assert all("no physical unit" in c["reason"] for c in mr["channels"])


@pytest.mark.parametrize("kind", ["ctpet", "mr2"])
def test_two_channel_dataset_from_folder_to_prepared_case(tmp_path, kind):
    """read -> validate -> fingerprint -> plan -> prepare, straight through the data/plan functions."""
    if kind == "ctpet":
        folder = generate_ctpet_phantoms(tmp_path, cases=2, seed=2, size=24, test_cases=0)
        expected = ["CT", "PET"]
    else:
        folder = generate_mr2_phantoms(tmp_path, cases=2, seed=2, size=40, test_cases=0)
        expected = ["MR", "MR"]
    spec = read_dataset(folder)
    assert spec.num_channels == 2 and validate_dataset(spec) == []
    record = spec.to_dict()  # what task.json stores
    assert record["channel_modalities"] == expected
    fp = fingerprint_task(record)
    assert fp["channel_modalities"] == expected and len(fp["channels"]) == 2
    plan = make_plan(fp, CFG, CPU, bytes_per_voxel=BYTES, channel_names=record["channel_names"])
    assert [c["modality"] for c in plan["channels"]] == expected
    values = {k.split(".", 1)[1]: v for k, v in plan["values"].items() if k.startswith("preprocess.")}
    cfg = PreprocessConfig(**{**values, "patch_size": [16, 16, 16]})
    case = spec.cases[0]
    prepared = prepare_case(case.images, case.label, cfg, record["channel_modalities"])
    assert prepared.image.shape[0] == 2 and prepared.label.shape[1:] == prepared.image.shape[1:]
    assert np.isfinite(prepared.image).all()
    for c, modality in enumerate(expected):
        if modality != "CT":
            inside = prepared.image[c][prepared.image[c] != 0]
            assert abs(inside.mean()) < 0.05 and abs(inside.std() - 1) < 0.05
