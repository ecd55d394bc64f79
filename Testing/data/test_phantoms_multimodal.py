"""Two-channel phantoms: CT+PET and T1+T2 MR (layout, one grid, contrasts, determinism, CLI)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.cli import main
from MedSeqFTLib.data import phantoms_mr
from MedSeqFTLib.data.datasets import read_dataset
from MedSeqFTLib.data.imageio import Geometry
from MedSeqFTLib.data.phantoms import generate_phantoms
from MedSeqFTLib.data.phantoms_multimodal import (MR2_DATASET_NAME, ctpet_dataset_name, generate_ctpet_phantoms,
                                                   generate_mr2_phantoms, render_mr2_case, render_pet)
from MedSeqFTLib.data.validate import validate_dataset
from MedSeqFTLib.errors import InputError

SIZE = 40


def _digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _same_grid(folder, case_id, sub="imagesTr"):
    images = [sitk.ReadImage(str(folder / sub / f"{case_id}_{k:04d}.nii.gz")) for k in range(2)]
    assert Geometry.from_image(images[0]).matches(Geometry.from_image(images[1])) is None
    if sub == "imagesTr":
        lab = sitk.ReadImage(str(folder / "labelsTr" / f"{case_id}.nii.gz"))
        assert Geometry.from_image(lab).matches(Geometry.from_image(images[0])) is None
    return images


@pytest.fixture(scope="module")
def ctpet(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctpet")
    return generate_ctpet_phantoms(root, cases=3, seed=4, size=SIZE, test_cases=1)


def test_ctpet_layout_dataset_json_and_validation(ctpet):
    assert ctpet.name == ctpet_dataset_name(0) == "Dataset201_PhantomLiverCTPET"
    meta = json.loads((ctpet / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT", "1": "PET"} and meta["numTraining"] == 3
    assert meta["labels"] == {"background": 0, "liver": 1, "liver_tumour": 2}
    assert meta["phantom"]["kind"] == "ct_pet" and meta["phantom"]["task_index"] == 0
    for i in range(3):
        ct, pet = _same_grid(ctpet, f"liver_{i:03d}")
        assert ct.GetPixelID() == sitk.sitkInt16 and pet.GetPixelID() == sitk.sitkFloat32
    _same_grid(ctpet, "liver_003", "imagesTs")
    spec = read_dataset(ctpet)
    assert spec.channel_modalities == ["CT", "PET"] and len(spec.cases) == 3 and len(spec.test_only) == 1
    assert validate_dataset(spec) == []


def test_ct_channel_is_the_ct_task_and_pet_is_hot_in_tumours(ctpet, tmp_path):
    ct_task = generate_phantoms(tmp_path, tasks=1, cases=3, seed=4, size=SIZE, test_cases=1)[0]
    tumour_cases = 0
    for i in range(3):
        cid = f"liver_{i:03d}"
        assert (ctpet / "imagesTr" / f"{cid}_0000.nii.gz").read_bytes() == (ct_task / "imagesTr" / f"{cid}_0000.nii.gz").read_bytes()
        assert (ctpet / "labelsTr" / f"{cid}.nii.gz").read_bytes() == (ct_task / "labelsTr" / f"{cid}.nii.gz").read_bytes()
        pet, hu, lab = (_array(ctpet / "imagesTr" / f"{cid}_0001.nii.gz"), _array(ctpet / "imagesTr" / f"{cid}_0000.nii.gz"),
                        _array(ctpet / "labelsTr" / f"{cid}.nii.gz"))
        assert pet.min() >= 0.0
        body = hu > -500
        assert pet[body].mean() > 5 * pet[hu < -900].mean()  # low outside the body
        if (lab == 2).sum() >= 5:
            tumour_cases += 1
            assert pet[lab == 2].mean() > 1.3 * pet[lab == 1].mean()  # tumour hotter than its organ
            assert pet[lab == 2].mean() > 2.0 * pet[body & (lab == 0)].mean()  # and than the background
    assert tumour_cases >= 1


def test_pet_is_blurred_and_noisy():
    from MedSeqFTLib.data.phantoms import T

    tissue = np.full((15, 15, 15), T["air"], np.uint8)
    tissue[7, 7, 7] = T["liver_tumour"]  # one hot voxel: the PSF spreads it over its neighbours
    pet = render_pet(np.random.default_rng(0), tissue, (3.0, 3.0, 3.0), 3.0)
    peak = np.unravel_index(np.argmax(pet), pet.shape)
    assert max(abs(int(p) - 7) for p in peak) <= 1 and pet.max() < 0.4 * pet.sum()
    assert pet[0].max() == 0.0  # nothing far from the source
    block = np.full((20, 20, 20), T["liver"], np.uint8)
    pet = render_pet(np.random.default_rng(1), block, (3.0, 3.0, 3.0), 3.0)[5:15, 5:15, 5:15]
    assert 1.5 < pet.mean() < 2.7 and 0.02 < pet.std() / pet.mean() < 0.3  # liver level, with counting noise


def test_ctpet_is_deterministic_and_refuses_bad_arguments(tmp_path, ctpet):
    a = generate_ctpet_phantoms(tmp_path / "a", cases=2, seed=4, size=SIZE, test_cases=0)
    assert _digest(a)["imagesTr/liver_001_0001.nii.gz"] == _digest(ctpet)["imagesTr/liver_001_0001.nii.gz"]
    b = generate_ctpet_phantoms(tmp_path / "b", cases=2, seed=5, size=SIZE, test_cases=0)
    assert _digest(a)["imagesTr/liver_001_0001.nii.gz"] != _digest(b)["imagesTr/liver_001_0001.nii.gz"]
    kidney = generate_ctpet_phantoms(tmp_path / "k", task=1, cases=1, seed=4, size=SIZE, test_cases=0)
    assert kidney.name == "Dataset202_PhantomKidneyCTPET"
    assert json.loads((kidney / "dataset.json").read_text())["labels"]["kidney_tumour"] == 2
    with pytest.raises(InputError, match=r"^task: .*Vessels\) has no tumours"):
        generate_ctpet_phantoms(tmp_path, task=3, cases=1, size=SIZE)
    with pytest.raises(InputError, match="--cases"):
        generate_ctpet_phantoms(tmp_path, cases=0, size=SIZE)


@pytest.fixture(scope="module")
def mr2(tmp_path_factory):
    return generate_mr2_phantoms(tmp_path_factory.mktemp("mr2"), cases=2, seed=6, size=SIZE, test_cases=1)


def test_mr2_layout_and_t1_equals_the_single_sequence_dataset(mr2, tmp_path):
    assert mr2.name == MR2_DATASET_NAME
    meta = json.loads((mr2 / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1", "1": "T2"} and meta["phantom"]["kind"] == "mr_t1_t2"
    spec = read_dataset(mr2)
    assert spec.channel_modalities == ["MR", "MR"] and spec.modality == "MR"
    assert validate_dataset(spec) == []
    for i in range(2):
        _same_grid(mr2, f"brain_{i:03d}")
    _same_grid(mr2, "brain_002", "imagesTs")
    t1_only = phantoms_mr.generate_mr_phantoms(tmp_path, cases=2, seed=6, size=SIZE, test_cases=0)
    for name in ("imagesTr/brain_001_0000.nii.gz", "labelsTr/brain_001.nii.gz"):
        assert (mr2 / name).read_bytes() == (t1_only / name).read_bytes()


def test_t1_and_t2_contrasts_differ():
    t1, t2, tissue, _ = render_mr2_case(np.random.default_rng([6, phantoms_mr.MR_STREAM, 0]), SIZE, 1.5)
    assert t1.shape == t2.shape == tissue.shape
    mean = {name: (t1[tissue == phantoms_mr.T[name]].mean(), t2[tissue == phantoms_mr.T[name]].mean())
            for name in ("csf", "gm", "wm")}
    # CSF: dark in T1, the brightest in T2; grey and white matter swap their order
    assert mean["csf"][0] < mean["gm"][0] < mean["wm"][0]
    assert mean["csf"][1] > mean["gm"][1] > mean["wm"][1]


def test_mr2_is_deterministic(tmp_path, mr2):
    again = generate_mr2_phantoms(tmp_path, cases=2, seed=6, size=SIZE, test_cases=1)
    assert _digest(again) == _digest(mr2)
    with pytest.raises(InputError, match="--size"):
        generate_mr2_phantoms(tmp_path, cases=1, size=20)  # 30 mm would cut the deep structures


def test_cli_kinds_ctpet_and_mr2(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantoms", str(out), "--kind", "ctpet", "--ct-task", "2", "--cases", "2", "--size", "24"]) == 0
    folder = out / "Dataset202_PhantomKidneyCTPET"
    assert capsys.readouterr().out.strip() == str(folder)
    assert len(list((folder / "imagesTr").glob("*_0001.nii.gz"))) == 2
    assert main(["phantoms", str(out), "--kind", "mr2", "--cases", "2", "--size", "40"]) == 0
    assert capsys.readouterr().out.strip() == str(out / MR2_DATASET_NAME)
    assert main(["phantoms", str(out), "--kind", "mr2", "--tasks", "2"]) == 2
    assert "--tasks" in capsys.readouterr().err
    assert main(["phantoms", str(out), "--kind", "ct", "--ct-task", "2"]) == 2
    assert "--ct-task" in capsys.readouterr().err
    assert main(["phantoms", str(out), "--kind", "ctpet", "--ct-task", "4"]) == 2
    err = capsys.readouterr().err
    assert "no tumours" in err and len(err.strip().splitlines()) == 1
