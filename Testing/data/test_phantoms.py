"""Phantom datasets: determinism, nnU-Net layout, anatomy and acquisition variety."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_erosion

from MedSeqFTLib.data.imageio import Geometry
from MedSeqFTLib.data.phantoms import HU, TASKS, generate_phantoms, render_case, task_spec
from MedSeqFTLib.errors import InputError

SIZE = 40  # small grids keep this file fast; the anatomy is in mm, so it is the same


def _digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def five_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    calls = []
    folders = generate_phantoms(root, tasks=5, cases=3, seed=11, size=SIZE, test_cases=1,
                                progress=lambda done, total, msg: calls.append((done, total)))
    return root, folders, calls


def test_layout_and_dataset_json(five_tasks):
    root, folders, calls = five_tasks
    assert [f.name for f in folders] == ["Dataset001_PhantomLiver", "Dataset002_PhantomKidney",
                                         "Dataset003_PhantomPancreas", "Dataset004_PhantomVessels",
                                         "Dataset005_PhantomSpleen"]
    assert calls[-1] == (20, 20) and [c[0] for c in calls] == list(range(1, 21))
    for folder, spec in zip(folders, TASKS):
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["channel_names"] == {"0": "CT"}
        assert meta["file_ending"] == ".nii.gz" and meta["numTraining"] == 3
        assert meta["labels"] == {"background": 0, **{name: i for i, (name, _) in enumerate(spec.labels, 1)}}
        images = sorted(p.name for p in (folder / "imagesTr").iterdir())
        labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
        assert len(labels) == 3 and images == [n.replace(".nii.gz", "_0000.nii.gz") for n in labels]
        assert len(list((folder / "imagesTs").iterdir())) == 1
        for name in labels:  # label and image share one grid
            lab = sitk.ReadImage(str(folder / "labelsTr" / name))
            img = sitk.ReadImage(str(folder / "imagesTr" / name.replace(".nii.gz", "_0000.nii.gz")))
            assert Geometry.from_image(lab).matches(Geometry.from_image(img)) is None
            assert lab.GetPixelID() == sitk.sitkUInt8 and img.GetPixelID() == sitk.sitkInt16


def test_labels_present_inside_body_with_realistic_hu(five_tasks):
    _, folders, _ = five_tasks
    nominal = {"liver": HU["liver"], "kidney": HU["kidney"], "pancreas": HU["pancreas"],
               "aorta": 190.0, "branches": 190.0, "spleen": HU["spleen"]}
    for folder, spec in zip(folders, TASKS):
        seen = set()
        for path in sorted((folder / "labelsTr").iterdir()):
            lab = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            hu = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "imagesTr" / path.name.replace(".nii.gz", "_0000.nii.gz"))))
            assert lab.max() <= len(spec.labels)
            assert hu[lab > 0].min() > -500  # every labelled voxel lies inside the body
            assert (hu < -900).mean() > 0.05  # air around the body
            for value, (name, _) in enumerate(spec.labels, 1):
                mask = lab == value
                seen.add(value) if mask.any() else None
                core = binary_erosion(mask)  # away from partial-volume borders
                if name in nominal and core.sum() >= 20:
                    assert abs(float(hu[core].mean()) - nominal[name]) < 45, (path.name, name, hu[core].mean())
        assert 1 in seen  # the organ is labelled in every task


def test_tissue_hu_in_rendered_case():
    hu, tissue, _ = render_case(np.random.default_rng([3, 0, 0]), "liver", size=48)
    from MedSeqFTLib.data.phantoms import T

    for name, lo, hi in [("fat", -140, -60), ("bone", 550, 850), ("liver", 40, 80), ("aorta", 130, 250),
                         ("air", -1024, -950), ("kidney", 15, 55)]:
        core = binary_erosion(tissue == T[name])
        assert core.sum() > 10, name
        assert lo < float(np.median(hu[core])) < hi, (name, np.median(hu[core]))
    tumour = binary_erosion(tissue == T["liver_tumour"])
    if tumour.sum() > 5:  # lesions differ from the parenchyma by 15-35 HU
        assert abs(np.median(hu[tumour]) - np.median(hu[binary_erosion(tissue == T["liver"])])) > 8


def test_spacing_and_orientation_vary_anatomy_does_not():
    spacings, directions, liver_ml = set(), set(), []
    for i in range(10):
        hu, tissue, geo = render_case(np.random.default_rng([0, 0, i]), "liver", size=32)
        spacings.add(tuple(np.round(geo["spacing"], 2)))
        directions.add(tuple(np.round(geo["direction"], 2)))
        sp = geo["spacing"]
        assert 2.5 <= min(sp) and max(sp) <= 4.5  # 3 mm nominal: in-plane x0.85-1.15, slices x0.95-1.5
        from MedSeqFTLib.data.phantoms import T
        liver_ml.append((tissue == T["liver"]).sum() * np.prod(sp) / 1000)
    assert len(spacings) == 10 and len(directions) >= 4
    # some oblique: direction cosines that are neither 0 nor +-1
    assert any(max(min(abs(v), abs(abs(v) - 1)) for v in d) > 0.02 for d in directions)
    assert any(d[0] == 0.0 for d in directions)  # some permuted
    assert any(d[0] == -1.0 for d in directions)  # some flipped
    # physically one organ family: the liver volume varies with organ scale (0.85-1.15 per case,
    # at most x2.5 in volume), not with the voxel grid
    assert max(liver_ml) / min(liver_ml) < 3.0


def test_deterministic_bytes_and_seed_dependence(tmp_path):
    a = generate_phantoms(tmp_path / "a", tasks=1, cases=2, seed=4, size=24, test_cases=0)
    b = generate_phantoms(tmp_path / "b", tasks=1, cases=2, seed=4, size=24, test_cases=0)
    c = generate_phantoms(tmp_path / "c", tasks=1, cases=2, seed=5, size=24, test_cases=0)
    da, db, dc = _digest(a[0]), _digest(b[0]), _digest(c[0])
    assert da == db and len(da) == 5
    images = [k for k in da if k.startswith("imagesTr")]
    assert all(da[k] != dc[k] for k in images)
    # rerunning over an existing phantom folder replaces it with identical files
    generate_phantoms(tmp_path / "a", tasks=1, cases=2, seed=4, size=24, test_cases=0)
    assert _digest(a[0]) == da
    # case i of task t does not depend on how many cases were asked for
    more = generate_phantoms(tmp_path / "d", tasks=1, cases=3, seed=4, size=24, test_cases=0)
    assert _digest(more[0])["labelsTr/liver_001.nii.gz"] == da["labelsTr/liver_001.nii.gz"]


def test_task_cycle_and_bad_arguments(tmp_path):
    assert task_spec(5) == TASKS[0] and task_spec(7).name == "Pancreas"
    with pytest.raises(InputError, match="--tasks"):
        generate_phantoms(tmp_path, tasks=0, cases=2)
    with pytest.raises(InputError, match="--cases"):
        generate_phantoms(tmp_path, tasks=1, cases=0)
    with pytest.raises(InputError, match="--size"):
        generate_phantoms(tmp_path, tasks=1, cases=1, size=4)
    foreign = tmp_path / "Dataset001_PhantomLiver"
    foreign.mkdir()
    (foreign / "dataset.json").write_text('{"name": "mine"}')
    with pytest.raises(InputError, match="not a generated phantom dataset"):
        generate_phantoms(tmp_path, tasks=1, cases=1, size=16)
    assert (foreign / "dataset.json").read_text() == '{"name": "mine"}'
