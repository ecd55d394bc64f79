"""``data.modality``: normalising --modality values and checking them against dataset.json."""

import pytest

from MedSeqFTLib.data.datasets import read_dataset
from MedSeqFTLib.data.modality import MODALITIES, apply_modality, channel_modality, normalise_modality
from MedSeqFTLib.errors import InputError


@pytest.mark.parametrize("value, expected", [("ct", "CT"), (" Mr ", "MR"), ("PET", "PET"), ("Other", "other")])
def test_normalise_modality(value, expected):
    assert normalise_modality(value) == expected in MODALITIES


@pytest.mark.parametrize("value", ["XRAY", "", None, 3, "MRI"])
def test_normalise_modality_refuses_other_values(value):
    with pytest.raises(InputError, match=r"^--modality: unknown modality"):
        normalise_modality(value)


@pytest.mark.parametrize("name, expected", [("CT", "CT"), ("ct", "CT"), ("PET", "PET"), ("T2", "MR"), ("flair", "MR"),
                                            ("MRI", "MR"), ("zscore", None), ("noNorm", None)])
def test_channel_modality(name, expected):
    assert channel_modality(name) == expected


def test_apply_modality_to_a_plain_folder_sets_every_channel(tmp_path, make_ds):
    spec = read_dataset(make_ds.plain(tmp_path / "p", n_cases=2, n_channels=2))
    apply_modality(spec, "pet")
    assert spec.modality == "PET" and spec.channel_names == {"0": "PET", "1": "PET"}


@pytest.mark.parametrize("channels, given, ok", [
    (("T2",), "MR", True), (("T2",), "CT", False), (("T2",), "other", False), (("T2",), "PET", False),
    (("zscore",), "PET", True), (("zscore",), "CT", False), (("CT", "CT"), "CT", True), (("CT", "T2"), "CT", False),
    (("CT", "PET"), "PET", False), (("PET",), "pet", True),
])
def test_apply_modality_checks_dataset_json(tmp_path, make_ds, channels, given, ok):
    spec = read_dataset(make_ds.nnunet(tmp_path / "nn", n_cases=1, n_test=0, channels=channels))
    names = dict(spec.channel_names)
    if ok:
        apply_modality(spec, given)
        assert spec.modality == normalise_modality(given) and spec.channel_names == names
    else:
        with pytest.raises(InputError, match=r"^--modality: .* contradicts .*dataset\.json channel_names"):
            apply_modality(spec, given)
        assert spec.channel_names == names


def test_apply_modality_checks_msd_modality(tmp_path, make_ds):
    spec = read_dataset(make_ds.msd(tmp_path / "msd", n_cases=1, n_test=0, modality="CT"))
    apply_modality(spec, "ct")
    assert spec.modality == "CT"
    with pytest.raises(InputError, match="dataset.json modality"):
        apply_modality(spec, "MR")
