"""MR brain phantoms: nnU-Net layout, small structures of fixed physical size, determinism, CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_dilation, binary_erosion

from MedSeqFTLib.cli import main
from MedSeqFTLib.data.datasets import read_dataset
from MedSeqFTLib.data.imageio import Geometry
from MedSeqFTLib.data.phantoms_mr import DATASET_NAME, LABELS, T, generate_mr_phantoms, render_mr_case
from MedSeqFTLib.data.validate import validate_dataset
from MedSeqFTLib.errors import InputError

SIZE = 40  # 60 mm field of view: the head is cut, the deep structures are not


def _digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _volumes_cm3(label_path) -> list:
    """Physical volume of labels 1..4: voxel count x voxel volume from the file's own spacing."""
    img = sitk.ReadImage(str(label_path))
    lab = sitk.GetArrayFromImage(img)
    voxel_cm3 = float(np.prod(img.GetSpacing())) / 1000.0
    return [float((lab == v).sum()) * voxel_cm3 for v in range(1, len(LABELS) + 1)]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("mr")
    calls = []
    folder = generate_mr_phantoms(root, cases=3, seed=5, size=SIZE, test_cases=1,
                                  progress=lambda done, total, msg: calls.append((done, total)))
    return folder, calls


def test_layout_dataset_json_and_validation(small_dataset):
    folder, calls = small_dataset
    assert folder.name == DATASET_NAME and calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "MR"} and meta["file_ending"] == ".nii.gz" and meta["numTraining"] == 3
    assert meta["labels"] == {"background": 0, "thalamus": 1, "putamen": 2, "caudate": 3, "hippocampus": 4}
    assert meta["phantom"]["kind"] == "mr_brain" and meta["phantom"]["seed"] == 5
    assert "generator_version" in meta["phantom"]
    labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    assert labels == ["brain_000.nii.gz", "brain_001.nii.gz", "brain_002.nii.gz"]
    assert images == [n.replace(".nii.gz", "_0000.nii.gz") for n in labels]
    assert [p.name for p in (folder / "imagesTs").iterdir()] == ["brain_003_0000.nii.gz"]
    for name in labels:
        lab = sitk.ReadImage(str(folder / "labelsTr" / name))
        img = sitk.ReadImage(str(folder / "imagesTr" / name.replace(".nii.gz", "_0000.nii.gz")))
        assert Geometry.from_image(lab).matches(Geometry.from_image(img)) is None
        assert lab.GetPixelID() == sitk.sitkUInt8 and img.GetPixelID() == sitk.sitkInt16
        assert sitk.GetArrayViewFromImage(img).min() >= 0  # positive MR units
    spec = read_dataset(folder)
    assert spec.format == "nnunet" and spec.modality == "MR"
    assert len(spec.cases) == 3 and len(spec.test_only) == 1
    assert validate_dataset(spec) == []


def test_every_structure_in_every_case(small_dataset):
    folder, _ = small_dataset
    for path in sorted((folder / "labelsTr").iterdir()):
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        counts = np.bincount(lab.ravel(), minlength=len(LABELS) + 1)
        assert len(counts) == len(LABELS) + 1, path.name
        assert all(counts[v] >= 10 for v in range(1, len(LABELS) + 1)), (path.name, counts)


def test_structure_volumes_small_and_ordered_at_default_grid(tmp_path):
    folder = generate_mr_phantoms(tmp_path, cases=2, seed=0, test_cases=0)  # size 64, 1.5 mm
    volumes = np.array([_volumes_cm3(p) for p in sorted((folder / "labelsTr").iterdir())])
    assert volumes.shape == (2, 4)
    assert (volumes >= 0.1).all() and (volumes <= 3.0).all(), volumes
    # thalamus > putamen > caudate > hippocampus in every case, each clearly larger than the next
    assert (volumes[:, :-1] / volumes[:, 1:] > 1.15).all(), volumes


def test_contrast_is_moderate_not_a_threshold():
    image, tissue, _ = render_mr_case(np.random.default_rng([1, 101, 0]), size=64)
    wm = float(np.median(image[binary_erosion(tissue == T["wm"])]))
    gm, csf, rim = (float(np.median(image[tissue == T[n]])) for n in ("gm", "csf", "deep_grey"))
    assert wm > rim + 40 and rim > gm and gm > csf + 100  # T1 order; the deep-grey rim stands out from WM
    contrast = {}
    for name in LABELS:  # structure against the rim voxels touching it, in units of WM - GM
        mask = tissue == T[name]
        shell = binary_dilation(mask) & (tissue == T["deep_grey"])
        contrast[name] = (float(np.median(image[mask])) - float(np.median(image[shell]))) / (wm - gm)
    assert all(abs(c) < 0.25 for c in contrast.values()), contrast  # 5-15 % before blur and noise
    assert contrast["putamen"] < 0 and contrast["caudate"] < 0, contrast  # darker than the rim
    assert contrast["thalamus"] > contrast["putamen"] and contrast["hippocampus"] > contrast["caudate"], contrast


def test_grid_varies_physical_size_does_not():
    spacings, directions, thalamus = set(), set(), []
    for i in range(10):
        _, tissue, geo = render_mr_case(np.random.default_rng([0, 101, i]), size=SIZE)
        sp = np.asarray(geo["spacing"])
        spacings.add(tuple(np.round(sp, 3)))
        directions.add(tuple(np.round(geo["direction"], 2)))
        assert 1.35 - 1e-6 <= sp.min() and sp.max() <= 2.025 + 1e-6  # 1.5 mm: in-plane x0.9-1.1, slices x0.95-1.35
        thalamus.append((tissue == T["thalamus"]).sum() * np.prod(sp) / 1000.0)
    assert len(spacings) == 10 and len(directions) >= 4
    assert any(max(min(abs(v), abs(abs(v) - 1)) for v in d) > 0.02 for d in directions)  # some oblique
    assert max(thalamus) / min(thalamus) < 2.5  # scale 0.9-1.1 and deformation, not the grid


def test_deterministic_bytes_seed_dependence_and_rerun(tmp_path):
    a = generate_mr_phantoms(tmp_path / "a", cases=2, seed=4, size=SIZE, test_cases=1)
    b = generate_mr_phantoms(tmp_path / "b", cases=2, seed=4, size=SIZE, test_cases=1)
    c = generate_mr_phantoms(tmp_path / "c", cases=2, seed=5, size=SIZE, test_cases=1)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db and len(da) == 6
    assert all(da[k] != dc[k] for k in da if k != "dataset.json") and da["dataset.json"] != dc["dataset.json"]
    generate_mr_phantoms(tmp_path / "a", cases=2, seed=4, size=SIZE, test_cases=1)  # replaces its own folder
    assert _digest(a) == da
    more = generate_mr_phantoms(tmp_path / "d", cases=3, seed=4, size=SIZE, test_cases=0)
    assert _digest(more)["labelsTr/brain_001.nii.gz"] == da["labelsTr/brain_001.nii.gz"]


def test_bad_arguments_and_foreign_folder(tmp_path):
    with pytest.raises(InputError, match="--cases"):
        generate_mr_phantoms(tmp_path, cases=0)
    with pytest.raises(InputError, match="--size"):
        generate_mr_phantoms(tmp_path, cases=1, size=8)
    with pytest.raises(InputError, match="field of view"):
        generate_mr_phantoms(tmp_path, cases=1, size=30)  # 45 mm would cut the deep structures
    with pytest.raises(InputError, match="--spacing"):
        generate_mr_phantoms(tmp_path, cases=1, spacing_mm=0.1)
    foreign = tmp_path / DATASET_NAME
    foreign.mkdir()
    (foreign / "dataset.json").write_text('{"name": "mine"}')
    with pytest.raises(InputError, match="not a generated phantom dataset"):
        generate_mr_phantoms(tmp_path, cases=1, size=SIZE)
    assert (foreign / "dataset.json").read_text() == '{"name": "mine"}'


def test_cli_kind_mr(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantoms", str(out), "--kind", "mr", "--cases", "2", "--size", "40"]) == 0
    folder = out / DATASET_NAME
    assert capsys.readouterr().out.strip() == str(folder)
    assert len(list((folder / "labelsTr").glob("*.nii.gz"))) == 2
    assert len(list((folder / "imagesTr").glob("*_0000.nii.gz"))) == 2
    assert json.loads((folder / "dataset.json").read_text())["phantom"]["size"] == 40
    # --tasks belongs to the CT kind; bad input exits 2 with one line
    assert main(["phantoms", str(out), "--kind", "mr", "--tasks", "2"]) == 2
    assert "--tasks" in capsys.readouterr().err
    assert main(["phantoms", str(out), "--kind", "xray"]) == 2
