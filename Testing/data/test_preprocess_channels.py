"""Per-channel normalisation in ``prepare_case``: a CT+PET case windows its CT and z-scores its PET."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.config import PreprocessConfig
from MedSeqFTLib.data.imageio import write_image
from MedSeqFTLib.data.normalisation import as_channel_modalities, body_channel, channel_schemes
from MedSeqFTLib.data.preprocess import cache_key, prepare_cached, prepare_case, prepare_image_for_inference
from MedSeqFTLib.errors import InputError

SHAPE_ZYX = (10, 24, 22)
SPACING = (1.5, 1.2, 3.0)


def _img(arr):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING)
    img.SetOrigin((4.0, -3.0, 10.0))
    return img


@pytest.fixture
def ct_pet(tmp_path):
    """CT (air -1000, body 40 HU, tumour 60 HU) and a PET (noisy > 0 everywhere, hot tumour)."""
    z, y, x = np.indices(SHAPE_ZYX)
    body = ((x - 11) / 8) ** 2 + ((y - 12) / 9) ** 2 < 1
    tumour = ((x - 11) / 3) ** 2 + ((y - 12) / 3) ** 2 + ((z - 5) / 2) ** 2 < 1
    hu = np.full(SHAPE_ZYX, -1000, np.int16)
    hu[body], hu[tumour] = 40, 60
    rng = np.random.default_rng(0)
    pet = (0.05 + rng.uniform(0, 0.05, SHAPE_ZYX)).astype(np.float32)  # scatter: > 0 in the air too
    pet[body] += 1.0
    pet[tumour] += 6.0
    lab = tumour.astype(np.uint8)
    paths = [write_image(_img(hu), tmp_path / "c_0000.nii.gz"), write_image(_img(pet), tmp_path / "c_0001.nii.gz")]
    return paths, write_image(_img(lab), tmp_path / "c.nii.gz")


def test_schemes_and_body_channel():
    assert channel_schemes(["CT", "PET", "T1"], "window") == ["window", "zscore", "zscore"]
    assert channel_schemes(["CT", "CT"], "ct_zscore") == ["ct_zscore", "ct_zscore"]
    assert body_channel(["PET", "CT"]) == 1 and body_channel(["T1", "T2"]) == 0
    assert as_channel_modalities("CT", 2) == ["CT", "CT"]
    with pytest.raises(InputError, match="preprocess.normalization"):
        channel_schemes(["CT"], "minmax")
    with pytest.raises(InputError, match=r"^modality: 1 channel modalities \['CT'\] for 2 image file\(s\)"):
        as_channel_modalities(["CT"], 2)
    with pytest.raises(InputError, match="modality"):
        as_channel_modalities(["CT", ""], 2)


def test_ct_pet_normalises_each_channel_by_its_own_scheme(ct_pet):
    paths, label = ct_pet
    cfg = PreprocessConfig(spacing=SPACING, patch_size=(8, 8, 8), ct_window=(-100.0, 100.0))
    case = prepare_case(paths, label, cfg, ["CT", "PET"])
    assert case.image.shape[0] == 2 and case.label.shape[1:] == case.image.shape[1:]
    ct, pet = case.image
    assert ct.min() >= 0.0 and ct.max() <= 1.0  # the HU window -> [0, 1]
    assert {round(float(v), 3) for v in np.unique(ct)} <= {0.0, 0.7, 0.8}  # -1000 -> 0, 40 -> 0.7, 60 -> 0.8
    inside = pet[pet != 0]
    assert abs(inside.mean()) < 1e-3 and abs(inside.std() - 1) < 1e-2  # PET z-scored
    assert pet[case.label[0] == 1].mean() > 1.5  # the hot tumour stays hot after the z-score
    # the CT channel is what a CT-only task gets, and the crop is the CT's body
    ct_only = prepare_case(paths[:1], label, cfg, "CT")
    assert np.array_equal(ct_only.image[0], ct) and np.array_equal(ct_only.affine, case.affine)
    pet_only = prepare_case(paths[1:], label, cfg, "PET")
    assert pet_only.spatial_shape != case.spatial_shape  # PET's "> 0" covers the whole field of view
    # the same list, PET first: the body is still found on the CT channel
    swapped = prepare_case(paths[::-1], label, cfg, ["PET", "CT"])
    assert np.array_equal(swapped.image[1], ct) and np.allclose(swapped.image[0], pet)
    # inference prepares exactly like training
    image, affine = prepare_image_for_inference(paths, cfg, ["CT", "PET"])
    assert np.array_equal(image, case.image) and np.array_equal(affine, case.affine)


def test_ct_zscore_uses_the_ct_statistics_on_ct_channels_only(ct_pet):
    paths, label = ct_pet
    cfg = PreprocessConfig(spacing=SPACING, patch_size=(8, 8, 8), normalization="ct_zscore", ct_stats=(0.0, 50.0, 40.0, 10.0))
    ct, pet = prepare_case(paths, label, cfg, ["CT", "PET"]).image
    assert {round(float(v), 4) for v in np.unique(ct)} <= {-4.0, 0.0, 1.0}  # clip to [0, 50], then (x - 40) / 10
    assert abs(pet[pet != 0].mean()) < 1e-3


def test_cache_key_includes_the_per_channel_scheme(ct_pet, tmp_path):
    paths, label = ct_pet
    cfg = PreprocessConfig(spacing=SPACING, patch_size=(8, 8, 8))
    keys = {tuple(m): cache_key(paths, label, cfg, m) for m in (["CT", "PET"], ["CT", "CT"], ["PET", "PET"], ["PET", "CT"])}
    assert len(set(keys.values())) == 4
    assert cache_key(paths, label, cfg, ["CT", "PET"]) == cache_key(paths, label, cfg, ["CT", "MR"])  # same schemes
    assert cache_key(paths[:1], label, cfg, ["CT"]) == cache_key(paths[:1], label, cfg, "CT")  # one channel: as before
    first = prepare_cached("c", paths, label, cfg, ["CT", "PET"], tmp_path / "cache")
    stamp = (tmp_path / "cache" / "c.npz").stat().st_mtime_ns
    prepare_cached("c", paths, label, cfg, ["CT", "PET"], tmp_path / "cache")
    assert (tmp_path / "cache" / "c.npz").stat().st_mtime_ns == stamp  # reused
    other = prepare_cached("c", paths, label, cfg, ["PET", "PET"], tmp_path / "cache")
    assert (tmp_path / "cache" / "c.npz").stat().st_mtime_ns != stamp  # scheme changed: rebuilt
    assert not np.array_equal(other.image[0], first.image[0])


def test_wrong_number_of_modalities_or_images(ct_pet):
    paths, label = ct_pet
    cfg = PreprocessConfig(spacing=SPACING, patch_size=(8, 8, 8))
    with pytest.raises(InputError, match=r"^modality: 2 channel modalities .* for 1 image file\(s\)"):
        prepare_case(paths[:1], label, cfg, ["CT", "PET"])
    with pytest.raises(InputError, match=r"for 2 image file\(s\)"):
        prepare_image_for_inference(paths, cfg, ["CT"])
