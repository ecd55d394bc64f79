"""Preprocessing: the MONAI pipeline, the cache, and the way back to the original grid."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.config import PreprocessConfig
from MedSeqFTLib.data.imageio import Geometry, read_image, write_image
from MedSeqFTLib.data.preprocess import (
    load_prepared,
    prepare_cached,
    prepare_case,
    prepare_image_for_inference,
    save_prepared,
    to_original_space,
)
from MedSeqFTLib.errors import InputError

SHAPE_ZYX = (14, 30, 26)
SPACING = (1.5, 1.2, 4.0)  # image axes 0, 1, 2 (anisotropic)


def _oblique(arr: np.ndarray) -> sitk.Image:
    """An oblique, axis-permuted grid: image axis 0 runs along -y, axis 1 along x, tilted 14 deg."""
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING)
    img.SetOrigin((3.0, -7.0, 11.0))
    c, s = np.cos(0.25), np.sin(0.25)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    img.SetDirection(tuple(rot.ravel()))
    return img


@pytest.fixture
def oblique_case(tmp_path):
    z, y, x = np.indices(SHAPE_ZYX)
    lab = np.zeros(SHAPE_ZYX, np.uint8)
    lab[((x - 13) / 7) ** 2 + ((y - 15) / 9) ** 2 + ((z - 7) / 4) ** 2 < 1] = 1
    lab[((x - 15) / 3) ** 2 + ((y - 12) / 3) ** 2 + ((z - 7) / 2) ** 2 < 1] = 2
    hu = np.full(SHAPE_ZYX, -1000, np.int16)
    hu[((x - 13) / 11) ** 2 + ((y - 15) / 13) ** 2 < 1] = 40  # body, touching no border in x/y
    hu[lab == 1] = 60
    hu[lab == 2] = 20
    image = write_image(_oblique(hu), tmp_path / "c_0000.nii.gz")
    label = write_image(_oblique(lab), tmp_path / "c.nii.gz")
    return image, label, hu, lab


# Orientationd("RAS") reorders the axes: RAS x follows image axis 1 (1.2 mm), y axis 0 (1.5 mm)
@pytest.mark.parametrize("spacing", [(1.2, 1.5, 4.0), (0.6, 0.75, 2.0)])
def test_label_round_trip_is_exact_on_oblique_grid(oblique_case, spacing):
    image, label, _, lab = oblique_case
    cfg = PreprocessConfig(spacing=spacing, patch_size=(16, 16, 16), crop_foreground=True)
    case = prepare_case([image], label, cfg, "CT")
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    assert case.image.shape[0] == 1 and case.label.shape == (1,) + case.image.shape[1:]
    assert min(case.image.shape[1:]) >= 16
    np.testing.assert_allclose(np.linalg.norm(case.affine[:3, :3], axis=0), spacing, rtol=1e-5)
    reference = read_image(image)
    back = to_original_space(case.label[0], case.affine, reference)
    assert Geometry.from_image(back).matches(Geometry.from_image(reference), tol=0.0) is None
    assert back.GetSize() == reference.GetSize()
    assert np.array_equal(sitk.GetArrayFromImage(back), lab)
    assert case.geometry == Geometry.from_image(reference)


def test_round_trip_with_non_dividing_spacing_differs_only_at_borders(oblique_case):
    from scipy.ndimage import binary_erosion

    image, label, _, lab = oblique_case
    case = prepare_case([image], label, PreprocessConfig(spacing=(2.0, 2.0, 2.0), patch_size=(8, 8, 8)), "CT")
    back = sitk.GetArrayFromImage(to_original_space(case.label[0], case.affine, read_image(image)))
    wrong = back != lab
    assert 0 < wrong.mean() < 0.03
    # every voxel deep inside an object (or the background) is right
    for value in (0, 1):
        core = binary_erosion(lab == value, iterations=2)
        assert not np.any(wrong & core)


def test_ct_window_values_and_crop(oblique_case):
    image, label, hu, _ = oblique_case
    cfg = PreprocessConfig(spacing=(1.2, 1.5, 4.0), ct_window=(-175, 250), patch_size=(8, 8, 8))
    case = prepare_case([image], label, cfg, "CT")
    # same spacing: no interpolation, so mapping the image back gives the windowed HU exactly
    back = sitk.GetArrayFromImage(to_original_space(case.image[0], case.affine, read_image(image), "linear"))
    expected = np.clip((hu.astype(np.float64) + 175) / 425, 0, 1)
    body = hu > -500
    np.testing.assert_allclose(back[body], expected[body], atol=1e-5)
    assert case.image.min() >= 0.0 and case.image.max() <= 1.0
    # cropping keeps the body plus a margin; the uncropped volume is larger
    full = prepare_case([image], label, cfg.replace(crop_foreground=False), "CT")
    assert np.prod(case.image.shape) < np.prod(full.image.shape)
    assert case.label.sum() == full.label.sum()  # no label voxel lost


def test_mr_normalisation_and_multichannel(tmp_path):
    rng = np.random.default_rng(3)
    arrs = []
    for k in range(2):
        a = np.zeros((10, 12, 14), np.float32)
        a[2:8, 3:9, 3:11] = rng.uniform(100, 300) + rng.normal(0, 10, size=(6, 6, 8))
        arrs.append(a)
    paths = [write_image(_oblique(a), tmp_path / f"m_{k:04d}.nii.gz") for k, a in enumerate(arrs)]
    cfg = PreprocessConfig(spacing=(1.2, 1.5, 4.0), patch_size=(8, 8, 8))
    image, affine = prepare_image_for_inference(paths, cfg, "MR")
    assert image.shape[0] == 2 and affine.shape == (4, 4)
    for c in range(2):
        inside = image[c][image[c] != 0]
        assert abs(inside.mean()) < 1e-3 and abs(inside.std() - 1) < 1e-2  # z-scored inside the body


def test_save_load_and_cache(tmp_path, oblique_case):
    image, label, _, _ = oblique_case
    cfg = PreprocessConfig(spacing=(1.2, 1.5, 4.0), patch_size=(8, 8, 8))
    case = prepare_case([image], label, cfg, "CT")
    path = save_prepared(case, tmp_path / "x.npz")
    again = load_prepared(path)
    assert np.array_equal(again.image, case.image) and np.array_equal(again.label, case.label)
    assert np.array_equal(again.affine, case.affine) and again.geometry == case.geometry
    with np.load(path, allow_pickle=False) as npz:  # nothing pickled inside
        assert set(npz.files) >= {"image", "label", "affine"}

    cache = tmp_path / "cache"
    first = prepare_cached("c", [image], label, cfg, "CT", cache)
    stamp = (cache / "c.npz").stat().st_mtime_ns
    second = prepare_cached("c", [image], label, cfg, "CT", cache)
    assert (cache / "c.npz").stat().st_mtime_ns == stamp  # reused
    assert np.array_equal(first.label, second.label)
    prepare_cached("c", [image], label, cfg.replace(spacing=(2.4, 3.0, 4.0)), "CT", cache)
    assert (cache / "c.npz").stat().st_mtime_ns != stamp  # settings changed: rebuilt
    stamp = (cache / "c.npz").stat().st_mtime_ns
    time.sleep(0.01)
    os.utime(image)  # the source changed
    prepare_cached("c", [image], label, cfg.replace(spacing=(2.4, 3.0, 4.0)), "CT", cache)
    assert (cache / "c.npz").stat().st_mtime_ns != stamp
    (cache / "c.npz").write_bytes(b"PK\x03\x04 damaged")
    rebuilt = prepare_cached("c", [image], label, cfg, "CT", cache)
    assert np.array_equal(rebuilt.label, first.label)


def test_bad_inputs(tmp_path, oblique_case):
    image, label, _, lab = oblique_case
    cfg = PreprocessConfig(spacing=(2.0, 2.0, 2.0), patch_size=(8, 8, 8))
    with pytest.raises(InputError, match="nope_0000.nii.gz: file not found"):
        prepare_case([tmp_path / "nope_0000.nii.gz"], None, cfg, "CT")
    shifted = _oblique(lab)
    shifted.SetOrigin((30.0, -7.0, 11.0))
    other = write_image(shifted, tmp_path / "shifted.nii.gz")
    with pytest.raises(InputError, match="shifted.nii.gz: label grid differs .*origin"):
        prepare_case([image], other, cfg, "CT")
    with pytest.raises(InputError, match="modality"):
        prepare_case([image], label, cfg, "")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="bad.npz: not a valid prepared-case file"):
        load_prepared(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="case_id"):
        prepare_cached("../x", [image], label, cfg, "CT", tmp_path)
