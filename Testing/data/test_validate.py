"""validate_dataset: every file is opened; one test per voxel/geometry problem, plus warnings."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from MedSeqFTLib.data.datasets import read_dataset
from MedSeqFTLib.data.validate import validate_dataset
from MedSeqFTLib.errors import InputError


def fails(spec_or_root, path, *words, **kwargs) -> str:
    spec = spec_or_root if not hasattr(spec_or_root, "is_dir") else read_dataset(spec_or_root)
    with pytest.raises(InputError) as info:
        validate_dataset(spec, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.fixture
def nn(tmp_path, make_ds):
    """A valid 3-case nnU-Net dataset (one imagesTs case) that tests then break."""
    return make_ds.nnunet(tmp_path / "ds", n_cases=3, n_test=1)


# ---------------------------------------------------------------------------- valid data


def test_valid_datasets_pass(tmp_path, make_ds):
    for root in (make_ds.nnunet(tmp_path / "a", channels=("CT", "PET")), make_ds.msd(tmp_path / "b"),
                 make_ds.nnunet(tmp_path / "c", ending=".nrrd")):
        spec = read_dataset(root)
        assert validate_dataset(spec) == []


def test_progress_reports_both_passes(nn):
    spec = read_dataset(nn)
    calls = []
    validate_dataset(spec, progress=lambda step, total, msg: calls.append((step, total, msg)))
    assert [c[0] for c in calls] == list(range(1, 9)) and {c[1] for c in calls} == {8}
    assert calls[0][2] == "header case_000" and calls[3][2] == "header test_000"
    assert calls[4][2] == "voxels case_000" and calls[-1][2] == "voxels test_000"


def test_plain_labels_and_modality_are_inferred(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=3, ct=True)
    spec = read_dataset(root)
    warnings = validate_dataset(spec)
    # independent computation of the values present in all label maps
    import SimpleITK as sitk
    values = sorted(set().union(*(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(c.label)))).tolist()
                                  for c in spec.cases)))
    assert spec.labels == {("background" if v == 0 else f"label_{v}"): v for v in values} == \
        {"background": 0, "label_1": 1, "label_2": 2}
    assert spec.modality == "CT" and spec.channel_names == {"0": "CT"}
    assert any("label names inferred" in w for w in warnings)
    assert any("modality guessed as CT" in w and "-1000" in w for w in warnings)

    mr = read_dataset(make_ds.plain(tmp_path / "mr", n_cases=2, ct=False, n_channels=2))
    validate_dataset(mr)
    assert mr.modality == "MR" and mr.channel_names == {"0": "MR", "1": "MR"}


def test_float_labels_with_whole_values_are_accepted(nn, make_ds):
    make_ds.write(nn / "labelsTr" / "case_000.nii.gz", make_ds.label_map(0).astype(np.float32))
    assert validate_dataset(read_dataset(nn)) == []


def test_tiny_grid_differences_are_tolerated(nn, make_ds):
    # float32 round-off in a label header written by another tool must not count as a mismatch
    make_ds.write(nn / "labelsTr" / "case_000.nii.gz", make_ds.label_map(0),
                  spacing=(1.0 + 1e-6, 1.2, 1.5), origin=(-5.0 + 1e-5, 3.0, 7.0))
    assert validate_dataset(read_dataset(nn)) == []


# ---------------------------------------------------------------------------- warnings


def test_empty_label_map_is_a_warning(nn, make_ds):
    make_ds.write(nn / "labelsTr" / "case_001.nii.gz", np.zeros((12, 11, 10), np.uint8))
    warnings = validate_dataset(read_dataset(nn))
    assert warnings == [f"case case_001: label map is empty (only background) in {nn / 'labelsTr' / 'case_001.nii.gz'}"]


def test_declared_label_that_never_occurs_is_a_warning(nn):
    meta = json.loads((nn / "dataset.json").read_text())
    meta["labels"]["vessel"] = 3
    (nn / "dataset.json").write_text(json.dumps(meta))
    assert validate_dataset(read_dataset(nn)) == ["label 'vessel' (3) does not occur in any training case"]


def test_read_time_warnings_are_returned(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "m", n_cases=2)
    make_ds.write(root / "imagesTr" / "stray.nii.gz", make_ds.volume(3))
    spec = read_dataset(root)
    assert len(spec.warnings) == 1
    assert validate_dataset(spec) == spec.warnings


# ---------------------------------------------------------------------------- unreadable files


def test_truncated_image(nn):
    path = nn / "imagesTr" / "case_001_0000.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    fails(nn, path, "file is truncated")


def test_truncated_uncompressed_image(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2, ending=".nii", n_test=0)
    path = root / "labelsTr" / "case_001.nii"
    path.write_bytes(path.read_bytes()[:600])  # header intact, most voxels gone
    fails(root, path, "file is truncated")


def test_truncated_mha(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2, ending=".mha", label_ending=".mha")
    path = root / "images" / "p1.mha"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    fails(root, path, "cannot read image")


def test_garbage_file(nn):
    path = nn / "imagesTs" / "test_000_0000.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a NIfTI file" * 20))
    fails(nn, path, "cannot read image header")


# ---------------------------------------------------------------------------- shapes and grids


def test_label_shape_mismatch(nn, make_ds):
    make_ds.write(nn / "labelsTr" / "case_002.nii.gz", np.zeros((11, 11, 10), np.uint8))
    fails(nn, nn / "labelsTr" / "case_002.nii.gz",
          "label size 10x11x11 differs from image size 10x11x12 of case_002_0000.nii.gz (case 'case_002')")


@pytest.mark.parametrize("grid, word", [
    ({"spacing": (1.0, 1.2, 1.6)}, "spacing"),
    ({"origin": (-5.0, 3.0, 8.0)}, "origin"),
    ({"direction": (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)}, "direction"),
])
def test_label_grid_mismatch(nn, make_ds, grid, word):
    make_ds.write(nn / "labelsTr" / "case_000.nii.gz", make_ds.label_map(0), **grid)
    fails(nn, nn / "labelsTr" / "case_000.nii.gz", "label grid differs from image case_000_0000.nii.gz", word)


def test_channel_grid_mismatch(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "mc", n_cases=2, channels=("T1", "T2"), n_test=0)
    make_ds.write(root / "imagesTr" / "case_001_0001.nii.gz", make_ds.volume(1), origin=(0.0, 0.0, 0.0))
    fails(root, root / "imagesTr" / "case_001_0001.nii.gz",
          "channel grid differs from case_001_0000.nii.gz of case 'case_001'", "origin")


def test_2d_image(nn, make_ds):
    make_ds.write(nn / "imagesTr" / "case_000_0000.nii.gz", np.zeros((11, 10), np.float32))
    fails(nn, nn / "imagesTr" / "case_000_0000.nii.gz", "2D image of size 10x11", "needs 3D volumes")


def test_single_slice_volume(nn, make_ds):
    make_ds.write(nn / "imagesTr" / "case_000_0000.nii.gz", np.zeros((1, 11, 10), np.float32))
    fails(nn, nn / "imagesTr" / "case_000_0000.nii.gz", "size 10x11x1 has a single slice")


def test_4d_image(nn, make_ds):
    make_ds.write(nn / "imagesTr" / "case_000_0000.nii.gz", np.zeros((2, 12, 11, 10), np.float32))
    fails(nn, nn / "imagesTr" / "case_000_0000.nii.gz", "4D image of size 10x11x12x2", "its own file")


def test_vector_image(nn, make_ds):
    make_ds.write(nn / "imagesTr" / "case_000_0000.nii.gz", np.zeros((12, 11, 10, 3), np.float32), is_vector=True)
    fails(nn, nn / "imagesTr" / "case_000_0000.nii.gz", "vector image with 3 components per voxel")


def test_too_many_voxels(nn):
    msg = fails(nn, nn / "imagesTr" / "case_000_0000.nii.gz", "10x11x12 (1,320 voxels) exceeds the limit of 1,000 voxels",
                max_voxels=1000)
    assert "it would need 0.00528 MB in memory as float32" in msg


def test_huge_volume_is_refused_from_its_header(tmp_path, make_ds):
    # a detached MetaImage header promising 2000^3 voxels: refused before any voxel is read
    root = make_ds.plain(tmp_path / "p", n_cases=1)
    (root / "images" / "big.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 2000 2000 2000\n"
                                             "ElementSpacing = 1 1 1\nElementType = MET_SHORT\nElementDataFile = big.raw\n")
    make_ds.write(root / "labels" / "big.mha", make_ds.label_map(0))
    fails(root, root / "images" / "big.mhd", "2000x2000x2000 (8,000,000,000 voxels) exceeds the limit of 134,217,728",
          "it would need 32.0 GB in memory")


def test_too_long_axis(nn, make_ds):
    make_ds.write(nn / "imagesTs" / "test_000_0000.nii.gz", np.zeros((2, 2, 4097), np.int16))
    fails(nn, nn / "imagesTs" / "test_000_0000.nii.gz", "size 4097x2x2", "4096 per axis")


def test_header_problems_come_before_voxel_problems(nn, make_ds):
    bad = make_ds.label_map(0).astype(np.int16)
    bad[3, 3, 3] = -4  # a voxel problem in the first case ...
    make_ds.write(nn / "labelsTr" / "case_000.nii.gz", bad)
    make_ds.write(nn / "labelsTr" / "case_002.nii.gz", np.zeros((11, 10), np.uint8))  # ... a header one in the last
    fails(nn, nn / "labelsTr" / "case_002.nii.gz", "2D image")
    make_ds.write(nn / "labelsTr" / "case_002.nii.gz", make_ds.label_map(2))
    fails(nn, nn / "labelsTr" / "case_000.nii.gz", "negative label value -4")


# ---------------------------------------------------------------------------- voxel values


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("ending", [".nrrd", ".mha"])
def test_non_finite_image(tmp_path, make_ds, value, ending):
    # (ITK's NIfTI reader turns NaN/Inf into 0 itself, so only other formats can show them)
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2, ending=ending, n_test=0)
    bad = make_ds.volume(1)
    bad[0, 0, 0] = value
    bad[11, 10, 9] = -value
    make_ds.write(root / "imagesTr" / f"case_001_0000{ending}", bad)
    fails(root, root / "imagesTr" / f"case_001_0000{ending}", "image contains 2 NaN/Inf voxel(s)")


def test_non_integer_labels(nn, make_ds):
    lab = make_ds.label_map(2).astype(np.float32)
    lab[5, 5, 5] = 0.5
    make_ds.write(nn / "labelsTr" / "case_002.nii.gz", lab)
    fails(nn, nn / "labelsTr" / "case_002.nii.gz", "non-integer label values (e.g. 0.5)")


def test_negative_labels(nn, make_ds):
    lab = make_ds.label_map(2).astype(np.int16)
    lab[0, 0, 0] = -1
    make_ds.write(nn / "labelsTr" / "case_002.nii.gz", lab)
    fails(nn, nn / "labelsTr" / "case_002.nii.gz", "negative label value -1")


def test_undeclared_label_value(nn, make_ds):
    lab = make_ds.label_map(1)
    lab[0, 0, :3] = 3
    lab[0, 1, 0] = 7
    make_ds.write(nn / "labelsTr" / "case_001.nii.gz", lab)
    fails(nn, nn / "labelsTr" / "case_001.nii.gz", "label value(s) [3, 7] not declared in dataset.json labels",
          "0=background, 1=liver, 2=tumour")


def test_undeclared_value_in_plain_labels_json(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2, labels_json={"background": 0, "kidney": 1})
    fails(root, root / "labels" / "p0.mha", "label value(s) [2] not declared in labels.json")


def test_plain_values_with_a_gap(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2)
    lab = make_ds.label_map(0)
    lab[lab == 2] = 4
    make_ds.write(root / "labels" / "p0.mha", lab)
    make_ds.write(root / "labels" / "p1.mha", (make_ds.label_map(1) > 0).astype(np.uint8))
    fails(root, root / "labels", "label values [0, 1, 4] are not consecutive 0..N-1")


def test_bad_max_voxels(nn):
    fails(read_dataset(nn), "max_voxels", "must be >= 1", max_voxels=0)
