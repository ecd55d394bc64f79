"""Channels per task: ``--channels`` parsing, per-channel modalities, and multi-channel bad input."""

from __future__ import annotations

import pytest

from MedSeqFTLib.data.datasets import read_dataset
from MedSeqFTLib.data.modality import (apply_channels, channel_modalities, channel_modality, parse_channels,
                                       task_channel_modalities)
from MedSeqFTLib.data.validate import validate_dataset
from MedSeqFTLib.errors import InputError


@pytest.mark.parametrize("text, expected", [
    ("CT,PET", ["CT", "PET"]), (" ct , pt ", ["CT", "PT"]), ("T1,t2,FLAIR", ["T1", "T2", "FLAIR"]),
    ("CT,CT", ["CT", "CT"]), ("mr", ["MR"]), ("CT,Other", ["CT", "other"]),
])
def test_parse_channels(text, expected):
    assert parse_channels(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "expected a comma list"), (None, "expected a comma list"), ("CT,,PET", "empty channel name at position 2"),
    ("CT,XRAY", "channel 1 name 'XRAY' states no modality"), ("zscore", "states no modality"),
])
def test_parse_channels_refuses_bad_text(text, message):
    with pytest.raises(InputError, match=r"^--channels: .*" + message):
        parse_channels(text)


def test_channel_modality_knows_pt_and_other():
    assert channel_modality("PT") == "PET" and channel_modality("other") == "other"
    assert channel_modalities({"0": "CT", "1": "PT", "2": "FLAIR", "3": "zscore"}, "PET") == ["CT", "PET", "MR", "PET"]


def test_task_channel_modalities_of_old_and_new_records():
    assert task_channel_modalities({"modality": "CT", "channel_names": {"0": "CT"}}) == ["CT"]
    # a record from before the field: the task modality fills channels whose name says nothing
    assert task_channel_modalities({"modality": "PET", "channel_names": {"0": "zscore"}}) == ["PET"]
    rec = {"modality": "MR", "channel_names": {"0": "CT", "1": "PET"}, "channel_modalities": ["CT", "pet"]}
    assert task_channel_modalities(rec) == ["CT", "PET"]
    with pytest.raises(InputError, match="channel_modalities"):
        task_channel_modalities({**rec, "channel_modalities": ["CT"]})
    with pytest.raises(InputError, match="unknown modality 'XRAY'"):
        task_channel_modalities({**rec, "channel_modalities": ["CT", "XRAY"]})


def test_nnunet_ct_pet_spec_has_per_channel_modalities(tmp_path, make_ds):
    spec = read_dataset(make_ds.nnunet(tmp_path / "cp", n_cases=2, n_test=1, channels=("CT", "PET")))
    assert spec.num_channels == 2 and spec.channel_modalities == ["CT", "PET"]
    assert spec.modality == "MR"  # the task-level field stays as before: CT only when every channel is
    assert spec.to_dict()["channel_modalities"] == ["CT", "PET"]
    assert [len(c.images) for c in spec.cases + spec.test_only] == [2, 2, 2]
    assert validate_dataset(spec) == []


def test_plain_folder_with_channels(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=3, n_channels=2)
    spec = read_dataset(root, channels=parse_channels("CT,PET"))
    assert spec.channel_names == {"0": "CT", "1": "PET"} and spec.channel_modalities == ["CT", "PET"]
    assert spec.modality == "MR"
    assert spec.cases[0].images == [root / "images" / "p0_0000.nrrd", root / "images" / "p0_0001.nrrd"]
    warnings = validate_dataset(spec)
    assert not any("guessed" in w for w in warnings)  # --channels said it: no intensity guess
    assert spec.channel_names == {"0": "CT", "1": "PET"}
    one = read_dataset(make_ds.plain(tmp_path / "one", n_cases=2), channels=["PET"])
    assert one.channel_names == {"0": "PET"} and one.modality == "PET"


def test_plain_folder_without_channels_guesses_each_channel(tmp_path, make_ds):
    root = make_ds.plain(tmp_path / "p", n_cases=2, n_channels=2)
    # channel 1 becomes MR-like (positive): a CT + other-modality folder
    for i in range(2):
        make_ds.write(root / "images" / f"p{i}_0001.nrrd", make_ds.volume(10 * i + 1, ct=False))
    spec = read_dataset(root)
    warnings = validate_dataset(spec)
    assert spec.channel_names == {"0": "CT", "1": "MR"} and spec.channel_modalities == ["CT", "MR"]
    assert any("channel modalities guessed as CT,MR" in w and "--channels" in w for w in warnings)


def _fails(call, path, *fragments):
    with pytest.raises(InputError) as info:
        call()
    text = str(info.value)
    assert text.startswith(f"{path}:"), text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert "\n" not in text


def test_channels_that_do_not_match_a_plain_folder(tmp_path, make_ds):
    single = make_ds.plain(tmp_path / "single", n_cases=2)  # p0.nrrd, p1.nrrd: no channel suffix
    _fails(lambda: read_dataset(single, channels=["CT", "PET"]), single / "images" / "p0.nrrd",
           "lacks the 4-digit channel suffix")
    two = make_ds.plain(tmp_path / "two", n_cases=2, n_channels=2)
    _fails(lambda: read_dataset(two, channels=["CT"]), two / "images" / "p0_0001.nrrd",
           "channel 0001 is not declared (--channels CT names 1 channel(s))")
    _fails(lambda: read_dataset(two, channels=["CT", "PET", "MR"]), two / "images" / "p0_0002.nrrd",
           "missing channel file of case 'p0'", "--channels CT,PET,MR names 3 channel(s)")
    (two / "images" / "p1_0001.nrrd").unlink()
    _fails(lambda: read_dataset(two, channels=["CT", "PET"]), two / "images" / "p1_0001.nrrd",
           "missing channel file of case 'p1'")


def test_channels_against_dataset_json(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "cp", n_cases=1, n_test=0, channels=("CT", "PET"))
    assert read_dataset(root, channels=["ct", "PT"]).channel_names == {"0": "CT", "1": "PET"}
    _fails(lambda: read_dataset(root, channels=["CT"]), root / "dataset.json",
           "--channels CT names 1 channel(s) but the dataset has 2")
    with pytest.raises(InputError, match=r"^--channels: channel 0 'PET' contradicts .*dataset\.json channel_names"):
        read_dataset(root, channels=["PET", "CT"])
    vague = make_ds.nnunet(tmp_path / "zs", n_cases=1, n_test=0, channels=("zscore",))
    spec = read_dataset(vague, channels=["PET"])  # a name that states no modality takes the given one
    assert spec.channel_names == {"0": "PET"} and spec.channel_modalities == ["PET"]
    spec = read_dataset(make_ds.nnunet(tmp_path / "again", n_cases=1, n_test=0, channels=("CT", "PET")))
    with pytest.raises(InputError, match="contradicts"):
        apply_channels(spec, ["CT", "T2"])
    assert spec.channel_names == {"0": "CT", "1": "PET"}  # unchanged after a refusal


def test_missing_channel_file_of_a_training_and_a_test_case(tmp_path, make_ds):
    root = make_ds.nnunet(tmp_path / "cp", n_cases=2, n_test=1, channels=("CT", "PET"))
    (root / "imagesTs" / "test_000_0001.nii.gz").unlink()
    _fails(lambda: read_dataset(root), root / "imagesTs" / "test_000_0001.nii.gz",
           "missing channel file of case 'test_000'", "declares 2 channel(s)")
    (root / "imagesTr" / "case_001_0001.nii.gz").unlink()
    _fails(lambda: read_dataset(root), root / "imagesTr" / "case_001_0001.nii.gz", "missing channel file of case 'case_001'")


@pytest.mark.parametrize("grid, word", [({"origin": (0.0, 0.0, 0.0)}, "origin"), ({"spacing": (2.0, 2.0, 2.0)}, "spacing")])
def test_channels_on_different_grids_are_one_clear_error(tmp_path, make_ds, grid, word):
    root = make_ds.nnunet(tmp_path / "cp", n_cases=2, n_test=0, channels=("CT", "PET"))
    pet = root / "imagesTr" / "case_001_0001.nii.gz"
    make_ds.write(pet, make_ds.volume(11, ct=False), **grid)
    spec = read_dataset(root)  # names only: the grids are read by validation
    _fails(lambda: validate_dataset(spec), pet, "channel grid differs from case_001_0000.nii.gz of case 'case_001'",
           word, "resample it, e.g. PET onto the CT")
