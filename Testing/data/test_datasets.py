"""read_dataset: the three layouts, multi-channel, and one test per structural problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from MedSeqFTLib.data.datasets import DatasetSpec, modality_from_channels, read_dataset
from MedSeqFTLib.errors import InputError


def fails(root, names, *words) -> str:
    """read_dataset(root) raises InputError whose one-line message names ``names`` and ``words``."""
    with pytest.raises(InputError) as info:
        read_dataset(root)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(names)), msg
    for w in words:
        assert w in msg, msg
    return msg


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------------------- layouts that work


def test_nnunet_single_channel(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "Dataset001_Liver", n_cases=3, n_test=2)
    spec = read_dataset(root)
    assert isinstance(spec, DatasetSpec)
    assert spec.format == "nnunet" and spec.name == "Synthetic" and spec.root == root
    assert spec.case_ids == ["case_000", "case_001", "case_002"]
    assert spec.cases[1].images == [root / "imagesTr" / "case_001_0000.nii.gz"]
    assert spec.cases[1].label == root / "labelsTr" / "case_001.nii.gz"
    assert [c.id for c in spec.test_only] == ["test_000", "test_001"]
    assert all(c.label is None for c in spec.test_only)
    assert spec.labels == {"background": 0, "liver": 1, "tumour": 2}
    assert spec.channel_names == {"0": "CT"} and spec.modality == "CT" and spec.num_channels == 1
    assert spec.file_ending == ".nii.gz" and spec.given_split is None and spec.warnings == []
    # to_dict is what task.json stores: it must be plain JSON
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["source"] == {"path": str(root), "format": "nnunet"}
    assert d["cases"][0] == {"id": "case_000", "images": [str(root / "imagesTr" / "case_000_0000.nii.gz")],
                             "label": str(root / "labelsTr" / "case_000.nii.gz")}
    assert d["test_only"][0]["label"] is None


@pytest.mark.parametrize("ending", [".nrrd", ".mha", ".nii"])
def test_nnunet_multi_channel_other_formats(tmp_path, make_ds, ending):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2, channels=("T1", "T2", "FLAIR"), ending=ending, n_test=1)
    # noise that operating systems and tools leave around must not matter
    (root / "imagesTr" / ".DS_Store").write_bytes(b"x")
    (root / "README.txt").write_text("notes")
    spec = read_dataset(root)
    assert spec.num_channels == 3 and spec.modality == "MR" and spec.file_ending == ending
    for case in spec.cases + spec.test_only:
        assert [p.name for p in case.images] == [f"{case.id}_{k:04d}{ending}" for k in range(3)]


def test_nnunet_detached_mhd_headers(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2, ending=".mhd", n_test=0)
    data_files = sorted(p.suffix for p in (root / "imagesTr").iterdir() if p.suffix != ".mhd")
    assert data_files, "SimpleITK should have written separate voxel files next to the .mhd headers"
    spec = read_dataset(root)
    assert [p.name for p in spec.cases[0].images] == ["case_000_0000.mhd"]


def test_nnunet_explicit_dataset_entry(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2, n_test=0)
    # nnU-Net v2 allows dataset.json to list the files itself, with any names
    shutil.move(root / "imagesTr", root / "img")
    shutil.move(root / "labelsTr", root / "seg")
    edit_json(root / "dataset.json", dataset={
        "a": {"images": ["img/case_000_0000.nii.gz"], "label": "seg/case_000.nii.gz"},
        "b": {"images": [str(root / "img" / "case_001_0000.nii.gz")], "label": "./seg/case_001.nii.gz"}})
    spec = read_dataset(root)
    assert spec.case_ids == ["a", "b"]
    assert spec.cases[1].label == root / "seg" / "case_001.nii.gz"


def test_msd_task(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task03_Liver", n_cases=3, n_test=2)
    spec = read_dataset(root)
    assert spec.format == "msd" and spec.name == "Organ"
    assert spec.case_ids == ["organ_0", "organ_1", "organ_2"]
    assert spec.cases[0].images == [root / "imagesTr" / "organ_0.nii.gz"]
    assert spec.cases[0].label == root / "labelsTr" / "organ_0.nii.gz"
    # MSD maps index -> name; the spec always maps name -> index
    assert spec.labels == {"background": 0, "organ": 1, "lesion": 2}
    assert spec.channel_names == {"0": "CT"} and spec.modality == "CT"
    assert [c.id for c in spec.test_only] == ["organ_100", "organ_101"]
    assert spec.given_split is None and spec.warnings == []  # the ._organ_0 AppleDouble file is ignored


def test_msd_unlisted_files_are_a_warning(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task", n_cases=3)
    edit_json(root / "dataset.json", numTraining=2,
              training=json.loads((root / "dataset.json").read_text())["training"][:2])
    spec = read_dataset(root)
    assert spec.case_ids == ["organ_0", "organ_1"]
    assert len(spec.warnings) == 2
    assert "imagesTr: 1 file(s) not listed" in spec.warnings[0] and "organ_2.nii.gz" in spec.warnings[0]


def test_plain_folder_mixed_formats_labels_and_split(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "mydata", n_cases=3, ending=".nrrd", label_ending=".nii.gz",
                         labels_json={"0": "background", "1": "kidney", "2": "cyst"},
                         split={"train": ["p0", "p1"], "test": ["p2"]})
    make_ds.write(root / "images" / "p9.mha", make_ds.volume(9))
    make_ds.write(root / "labels" / "p9.nii", make_ds.label_map(9))
    make_ds.write(root / "imagesTs" / "new.nii.gz", make_ds.volume(7))
    spec = read_dataset(root)
    assert spec.format == "plain" and spec.name == "mydata"
    assert spec.case_ids == ["p0", "p1", "p2", "p9"]
    assert spec.cases[3].images == [root / "images" / "p9.mha"] and spec.cases[3].label == root / "labels" / "p9.nii"
    assert spec.labels == {"background": 0, "kidney": 1, "cyst": 2}
    assert spec.given_split == {"train": ["p0", "p1"], "test": ["p2"], "source": str(root / "split.json")}
    assert [c.id for c in spec.test_only] == ["new"]
    assert spec.file_ending == ""  # mixed formats
    assert spec.channel_names == {"0": "unknown"}  # validate_dataset guesses it from intensities


def test_plain_channels_and_case_names_with_digits(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "mc", n_cases=2, n_channels=2, ending=".nii.gz")
    spec = read_dataset(root)
    assert spec.num_channels == 2
    assert [p.name for p in spec.cases[1].images] == ["p1_0000.nii.gz", "p1_0001.nii.gz"]
    # "patient_0001" with a label of the same name is a case, not channel 1 of "patient"
    other = tmp_path / "digits"
    for name in ("patient_0001", "patient_0002"):
        make_ds.write(other / "images" / f"{name}.nii.gz", make_ds.volume(1))
        make_ds.write(other / "labels" / f"{name}.nii.gz", make_ds.label_map(1))
    spec = read_dataset(other)
    assert spec.case_ids == ["patient_0001", "patient_0002"] and spec.num_channels == 1


def test_modality_from_channel_names():
    assert modality_from_channels({"0": "CT"}) == "CT"
    assert modality_from_channels({"0": "ct", "1": "CT"}) == "CT"
    assert modality_from_channels({"0": "CT", "1": "PET"}) == "MR"
    assert modality_from_channels({"0": "T2"}) == "MR"


# ---------------------------------------------------------------------------- the folder itself


def test_missing_folder(tmp_path):
    fails(tmp_path / "nope", tmp_path / "nope", "dataset folder not found")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "image.nii.gz"
    f.write_bytes(b"x")
    fails(f, f, "not a folder")


def test_empty_folder(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / ".DS_Store").write_bytes(b"x")
    fails(tmp_path / "ds", tmp_path / "ds", "dataset folder is empty")


def test_unrecognised_layout(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "scan.nii.gz").write_bytes(b"x")
    fails(tmp_path / "ds", tmp_path / "ds", "no recognisable dataset layout", "images/ and labels/")


def test_parent_of_datasets_gets_a_hint(tmp_path, make_ds):
    make_ds.nnunet(tmp_path / "raw" / "Dataset001_A", n_cases=1, n_test=0)
    fails(tmp_path / "raw", tmp_path / "raw", "no recognisable dataset layout", "['Dataset001_A'] look like datasets")
    fails(tmp_path / "raw" / "Dataset001_A" / "imagesTr", tmp_path / "raw" / "Dataset001_A" / "imagesTr",
          "looks like the imagesTr/ subfolder")


def test_imagesTr_without_dataset_json(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1)
    (root / "dataset.json").unlink()
    fails(root, root / "dataset.json", "file not found", "needs its dataset.json")


def test_malformed_json(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1)
    (root / "dataset.json").write_text('{"channel_names": {"0": "CT"},, }')
    fails(root, root / "dataset.json", "malformed JSON at line 1")


def test_dataset_json_not_an_object(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1)
    (root / "dataset.json").write_text("[1, 2]")
    fails(root, root / "dataset.json", "expected a JSON object, got list")


def test_dataset_json_of_unknown_kind(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1)
    (root / "dataset.json").write_text('{"name": "x", "labels": {"background": 0}}')
    fails(root, root / "dataset.json", "neither an nnU-Net v2 dataset.json", "nor an MSD one")


# ---------------------------------------------------------------------------- nnU-Net dataset.json


@pytest.mark.parametrize("changes, words", [
    ({"labels": None}, ["nnU-Net v2 dataset.json lacks key(s) ['labels']"]),
    ({"channel_names": None, "modality": {"0": "CT"}}, ["lacks key(s) ['channel_names']", "v1 called channel_names 'modality'"]),
    ({"labels": {"liver": 1, "tumour": 2}}, ["labels must start with background 0, got values [1, 2]"]),
    ({"labels": {"background": 0, "liver": 1, "tumour": 1}}, ["duplicate label value(s) [1] for labels ['liver', 'tumour']"]),
    ({"labels": {"background": 0, "liver": 1, "tumour": 3}}, ["must be consecutive 0..2", "got [0, 1, 3]"]),
    ({"labels": {"background": 0, "liver": 1, "tumour": -2}}, ["label 'tumour' has a negative value -2"]),
    ({"labels": {"background": 0, "liver": 1.5, "tumour": 2}}, ["label 'liver' must have an integer value, got 1.5"]),
    ({"labels": {"background": 0, "whole": [1, 2], "core": 2}}, ["region-based labels are not supported"]),
    ({"labels": {}}, ["labels must be a non-empty object"]),
    ({"numTraining": 5}, ["numTraining is 5 but 3 labelled case(s) were found in imagesTr/ and labelsTr/"]),
    ({"numTraining": "3"}, ["numTraining must be an integer, got '3'"]),
    ({"file_ending": ".png"}, ["file_ending '.png' is not supported", ".nii.gz"]),
    ({"channel_names": {"1": "CT"}}, ["channel_names keys must be consecutive channel numbers starting at 0, got [1]"]),
    ({"channel_names": {"zero": "CT"}}, ["channel_names keys must be channel numbers"]),
    ({"channel_names": {"0": ""}}, ["channel_names['0'] must be a non-empty name"]),
])
def test_bad_nnunet_dataset_json(tmp_path, make_ds, changes, words):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=3, n_test=0)
    edit_json(root / "dataset.json", **changes)
    fails(root, root / "dataset.json", *words)


def test_bad_explicit_dataset_entry(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1, n_test=0)
    edit_json(root / "dataset.json", dataset={"a": {"images": ["imagesTr/case_000_0000.nii.gz"]}})
    fails(root, root / "dataset.json", "dataset['a'] needs 'images' (a list of 1 path(s)) and 'label'")
    edit_json(root / "dataset.json", dataset={"a": {"images": ["imagesTr/gone_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}})
    fails(root, root / "imagesTr" / "gone_0000.nii.gz", "dataset['a'] image listed in dataset.json not found")


# ---------------------------------------------------------------------------- nnU-Net files


def test_image_without_label(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=3, meta_extra={"numTraining": 2})
    (root / "labelsTr" / "case_001.nii.gz").unlink()
    fails(root, root / "imagesTr" / "case_001_0000.nii.gz", "image without label", "case 'case_001'",
          "labelsTr/case_001.nii.gz")


def test_label_without_image(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=3)
    (root / "imagesTr" / "case_002_0000.nii.gz").unlink()
    fails(root, root / "labelsTr" / "case_002.nii.gz", "label without image", "case 'case_002'",
          "imagesTr/case_002_0000.nii.gz")


def test_missing_channel_file(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2, channels=("T1", "T2"))
    (root / "imagesTr" / "case_001_0001.nii.gz").unlink()
    fails(root, root / "imagesTr" / "case_001_0001.nii.gz", "missing channel file of case 'case_001'",
          "declares 2 channel(s)")


def test_missing_channel_file_in_imagesTs(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1, channels=("T1", "T2"), n_test=1)
    (root / "imagesTs" / "test_000_0000.nii.gz").unlink()
    fails(root, root / "imagesTs" / "test_000_0000.nii.gz", "missing channel file of case 'test_000'")


def test_undeclared_channel(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2)
    shutil.copy(root / "imagesTr" / "case_000_0000.nii.gz", root / "imagesTr" / "case_000_0001.nii.gz")
    fails(root, root / "imagesTr" / "case_000_0001.nii.gz", "channel 0001 is not declared", "declares 1 channel(s)")


def test_image_without_channel_suffix(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2)
    shutil.move(root / "imagesTr" / "case_000_0000.nii.gz", root / "imagesTr" / "case_000.nii.gz")
    fails(root, root / "imagesTr" / "case_000.nii.gz", "lacks the 4-digit channel suffix", "CASE_0000.nii.gz")


def test_unsupported_file_format(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2)
    (root / "imagesTr" / "case_009_0000.png").write_bytes(b"\x89PNG")
    fails(root, root / "imagesTr" / "case_009_0000.png", "unsupported file format", ".nii.gz, .nii, .nrrd")


def test_other_file_ending_than_declared(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2)
    make_ds.write(root / "labelsTr" / "case_000.nrrd", make_ds.label_map(0))
    fails(root, root / "labelsTr" / "case_000.nrrd", "file ending '.nrrd' differs from the dataset's file_ending '.nii.gz'")


def test_subfolder_in_imagesTr(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2)
    (root / "imagesTr" / "old").mkdir()
    fails(root, root / "imagesTr" / "old", "unexpected subfolder in imagesTr/")


def test_missing_labelsTr(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=2)
    shutil.rmtree(root / "labelsTr")
    fails(root, root / "labelsTr", "folder not found", "imagesTr/ and labelsTr/")


def test_empty_imagesTr(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "ds", n_cases=1, n_test=0)
    for sub in ("imagesTr", "labelsTr"):
        for p in (root / sub).iterdir():
            p.unlink()
    fails(root, root / "imagesTr", "holds no training images")


# ---------------------------------------------------------------------------- MSD


def test_msd_4d_is_refused_with_advice(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task01_BrainTumour", n_cases=1)
    edit_json(root / "dataset.json", tensorImageSize="4D", modality={"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"})
    fails(root, root / "dataset.json", "4D multi-modal MSD images (4 modalities", "nnUNetv2_convert_MSD_dataset")


@pytest.mark.parametrize("changes, words", [
    ({"modality": None}, ["MSD dataset.json lacks key(s) ['modality']"]),
    ({"training": []}, ["training must be a non-empty list"]),
    ({"training": [{"image": "./imagesTr/organ_0.nii.gz"}]}, ["training[0] needs 'image' and 'label' paths"]),
    ({"labels": {"0": "background", "1": "organ", "2": "organ"}}, ["duplicate label name(s) ['organ']"]),
    ({"labels": {"1": "organ", "2": "lesion"}}, ["labels must start with background 0"]),
    ({"numTraining": 7}, ["numTraining is 7 but 3 labelled case(s) were found in dataset.json training"]),
])
def test_bad_msd_dataset_json(tmp_path, make_ds, changes, words):
    root = make_ds.msd(tmp_path / "Task", n_cases=3)
    edit_json(root / "dataset.json", **changes)
    fails(root, root / "dataset.json", *words)


def test_msd_repeated_case(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task", n_cases=2)
    training = json.loads((root / "dataset.json").read_text())["training"]
    edit_json(root / "dataset.json", training=training + [training[0]], numTraining=3)
    fails(root, root / "dataset.json", "training[2] repeats case 'organ_0' (also training[0])")


def test_msd_listed_image_missing(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task", n_cases=3)
    (root / "imagesTr" / "organ_1.nii.gz").unlink()
    fails(root, root / "imagesTr" / "organ_1.nii.gz", "training[1] image listed in dataset.json not found")


def test_msd_image_without_label(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task", n_cases=3)
    (root / "labelsTr" / "organ_2.nii.gz").unlink()
    fails(root, root / "labelsTr" / "organ_2.nii.gz", "training[2] label listed in dataset.json not found")


def test_msd_listed_unsupported_format(tmp_path, make_ds):
    root = make_ds.msd(tmp_path / "Task", n_cases=1)
    training = [{"image": "./imagesTr/organ_0.png", "label": "./labelsTr/organ_0.nii.gz"}]
    edit_json(root / "dataset.json", training=training, numTraining=1)
    fails(root, root / "imagesTr" / "organ_0.png", "unsupported file format of training[0] image")


# ---------------------------------------------------------------------------- plain


def test_plain_without_labels_folder(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2)
    shutil.rmtree(root / "labels")
    fails(root, root / "labels", "folder not found", "images/ and labels/ side by side")


def test_plain_image_without_label(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=3)
    (root / "labels" / "p0.mha").unlink()
    (root / "labels" / "p2.mha").unlink()
    fails(root, root / "images" / "p0.nrrd", "image without label: case 'p0'", "(2 cases lack a label)")


def test_plain_label_without_image(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=3)
    (root / "images" / "p1.nrrd").unlink()
    fails(root, root / "labels" / "p1.mha", "label without image: case 'p1'")


def test_plain_two_files_for_one_case(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2)
    make_ds.write(root / "images" / "p1.nii.gz", make_ds.volume(1))
    fails(root, root / "images" / "p1.nrrd", "two files for case 'p1': p1.nii.gz and p1.nrrd")


def test_plain_unsupported_format(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2)
    (root / "labels" / "p0.dcm").write_bytes(b"DICM")
    fails(root, root / "labels" / "p0.dcm", "unsupported file format")


def test_plain_empty_images(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=1)
    (root / "images" / "p0.nrrd").unlink()
    fails(root, root / "images", "holds no image files")


def test_plain_missing_channel(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2, n_channels=3)
    (root / "images" / "p0_0001.nrrd").unlink()
    fails(root, root / "images" / "p0_0001.nrrd", "missing channel file of case 'p0'", "have 3 channel(s)")


def test_plain_bad_labels_json(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=1, labels_json={"background": 0, "kidney": 2})
    fails(root, root / "labels.json", "must be consecutive 0..1")
    (root / "labels.json").write_text("{")
    fails(root, root / "labels.json", "malformed JSON")


@pytest.mark.parametrize("split, words", [
    ({"train": ["p0"]}, ["expected an object {\"train\": [case ids], \"test\": [case ids]}"]),
    ({"train": "p0", "test": []}, ["train must be a list of case ids (strings), got 'p0'"]),
    ({"train": ["p0"], "test": [1]}, ["test must be a list of case ids"]),
])
def test_plain_bad_split_json(tmp_path, make_ds, split, words):
    root = make_ds.plain(tmp_path / "p", n_cases=2, split=split)
    fails(root, root / "split.json", *words)
