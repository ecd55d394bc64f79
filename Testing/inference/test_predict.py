"""``medseqft predict``: output geometry equals the input's, label names recorded, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.cli import main
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.inference.predict import output_name, parse_image_args

from synthetic_workspace import build_workspace, oblique_direction, write_case


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict") / "ws"
    return build_workspace(root, tasks=("alpha", "beta"), n_cases=2, statuses={"beta": "training"})


def test_prediction_has_the_exact_input_geometry_on_an_oblique_anisotropic_image(ws, tmp_path, capsys):
    # a grid unlike the training cases': other size, spacing, origin and an oblique direction
    spacing, size, origin = (0.7, 1.9, 3.3), (27, 13, 9), (101.25, -40.5, 17.0)
    img_path, _ = write_case(tmp_path / "in", "new", np.random.default_rng(5), size=size, spacing=spacing, origin=origin)
    ref = sitk.ReadImage(str(img_path))
    assert not np.allclose(np.abs(np.reshape(ref.GetDirection(), (3, 3))), np.eye(3))  # really oblique
    out = tmp_path / "out"
    code = main(["predict", str(ws.root), "--task", "alpha", "--out", str(out), str(img_path)])
    assert code == 0, capsys.readouterr().err
    pred_path = out / "new.nii.gz"  # nnU-Net channel tag _0000 dropped
    assert str(pred_path) in capsys.readouterr().out
    pred = sitk.ReadImage(str(pred_path))
    assert pred.GetSize() == ref.GetSize() == size
    assert pred.GetSpacing() == pytest.approx(ref.GetSpacing(), abs=1e-6)
    assert pred.GetOrigin() == pytest.approx(ref.GetOrigin(), abs=1e-5)
    assert pred.GetDirection() == pytest.approx(ref.GetDirection(), abs=1e-6)
    assert pred.GetDirection() == pytest.approx(oblique_direction(), abs=1e-6)
    values = set(np.unique(sitk.GetArrayFromImage(pred)).tolist())
    assert values <= {0, 1, 2}
    assert json.loads((out / "new.labels.json").read_text()) == {"background": 0, "organ": 1, "core": 2}


def test_nrrd_output_carries_slicer_segment_names_and_same_voxels(ws, tmp_path):
    img_path, _ = write_case(tmp_path / "in", "c7", np.random.default_rng(7))
    assert main(["predict", str(ws.root), "--task", "alpha", "--out", str(tmp_path / "a"), str(img_path)]) == 0
    assert main(["predict", str(ws.root), "--task", "alpha", "--out", str(tmp_path / "b"), "--suffix", ".seg.nrrd",
                 str(img_path)]) == 0
    nii = sitk.ReadImage(str(tmp_path / "a" / "c7.nii.gz"))
    seg = sitk.ReadImage(str(tmp_path / "b" / "c7.seg.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(nii), sitk.GetArrayFromImage(seg))
    names = {seg.GetMetaData(f"Segment{i}_Name"): int(seg.GetMetaData(f"Segment{i}_LabelValue")) for i in range(2)}
    assert names == {"organ": 1, "core": 2}
    assert (tmp_path / "b" / "c7.labels.json").is_file()


def test_unknown_and_unfinished_task_and_unreadable_image_exit_2(ws, tmp_path, capsys):
    img_path, _ = write_case(tmp_path / "in", "x", np.random.default_rng(1))
    assert main(["predict", str(ws.root), "--task", "gamma", "--out", str(tmp_path / "o"), str(img_path)]) == 2
    assert "unknown task 'gamma'" in capsys.readouterr().err
    assert main(["predict", str(ws.root), "--task", "beta", "--out", str(tmp_path / "o"), str(img_path)]) == 2
    assert "no finished model" in capsys.readouterr().err
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image at all")
    assert main(["predict", str(ws.root), "--task", "alpha", "--out", str(tmp_path / "o"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "broken.nii.gz" in err and len(err.strip().splitlines()) <= 2
    assert not list((tmp_path / "o").glob("*.nii.gz")) if (tmp_path / "o").exists() else True


def test_parse_image_args_channels(tmp_path):
    a, b = tmp_path / "a_0000.nii.gz", tmp_path / "a_0001.nii.gz"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    assert parse_image_args([f"{a},{b}"], 2) == [[a, b]]
    with pytest.raises(InputError, match="2 channel"):
        parse_image_args([str(a)], 2)
    with pytest.raises(InputError, match="not found"):
        parse_image_args([str(tmp_path / "missing.nii.gz")], 1)
    assert output_name(Path("dir/case_0000.nrrd")) == "case.nrrd"
    assert output_name(Path("scan.nii.gz"), ".mha") == "scan.mha"


def test_seg_nrrd_loads_in_slicer_mrml_with_names_and_values(tmp_path):
    """Slicer's own segmentation reader (slicer-core, no Qt) reads the segment names and label values."""
    slicer = pytest.importorskip("slicer")
    from MedSeqFTLib.inference.predict import write_prediction

    _, lab = write_case(tmp_path, "c", np.random.default_rng(0), labels_max=2)
    path = write_prediction(sitk.ReadImage(str(lab)), tmp_path / "out.seg.nrrd", {"background": 0, "organ": 1, "core": 2})
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    seg = node.GetSegmentation()
    got = {seg.GetNthSegment(i).GetName(): seg.GetNthSegment(i).GetLabelValue() for i in range(seg.GetNumberOfSegments())}
    assert got == {"organ": 1, "core": 2}
