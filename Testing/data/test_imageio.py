"""Image reading/writing, geometry and the RAS conversion against nibabel/MONAI."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from MedSeqFTLib.data import imageio
from MedSeqFTLib.data.imageio import (
    Geometry,
    image_suffix,
    ras_array_to_sitk,
    read_header,
    read_image,
    sitk_to_ras_array,
    write_image,
)
from MedSeqFTLib.errors import InputError


def _oblique_image(seed: int = 0, shape_zyx=(7, 6, 5), dtype=np.float32) -> sitk.Image:
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray((rng.normal(size=shape_zyx) * 100).astype(dtype))
    img.SetSpacing((1.25, 0.75, 3.0))
    img.SetOrigin((10.0, -20.0, 5.0))
    c, s = np.cos(0.3), np.sin(0.3)
    # a rotation about z composed with an axis permutation: nothing is axis-aligned
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    img.SetDirection(tuple(rot.ravel()))
    return img


def test_image_suffix():
    assert image_suffix("a/b/case_0000.nii.gz") == ".nii.gz"
    assert image_suffix("x.NRRD") == ".nrrd"
    assert image_suffix("x.mha") == ".mha"
    assert image_suffix("x.png") is None
    assert image_suffix(".nii.gz") is None  # a suffix alone is no file name


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_write_read_round_trip(tmp_path, suffix):
    img = _oblique_image(dtype=np.int16)
    path = write_image(img, tmp_path / f"img{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [f"img{suffix}"]  # no temp file left over
    back = read_image(path)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))
    assert Geometry.from_image(back).matches(Geometry.from_image(img)) is None
    header = read_header(path)
    assert header.geometry.size == (5, 6, 7) and header.dimension == 3 and header.components == 1
    assert header.geometry.matches(Geometry.from_image(img)) is None


def test_ras_array_matches_nibabel(tmp_path):
    nib = pytest.importorskip("nibabel")
    img = _oblique_image()
    path = write_image(img, tmp_path / "a.nii.gz")
    array, affine = sitk_to_ras_array(read_image(path))
    ref = nib.load(str(path))
    assert array.shape == ref.shape == (5, 6, 7)
    assert np.array_equal(array, np.asarray(ref.dataobj))
    np.testing.assert_allclose(affine, ref.affine, atol=1e-4)
    # inverse: same voxels, same grid
    again = ras_array_to_sitk(array, affine)
    assert Geometry.from_image(again).matches(Geometry.from_image(img)) is None
    assert np.array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(img))


def test_monai_reader_equals_nibabel_reader(tmp_path):
    from monai.data import NibabelReader
    from monai.transforms import LoadImage, LoadImaged

    path = write_image(_oblique_image(), tmp_path / "a.nii.gz")
    ours = LoadImage(image_only=True, reader=imageio.SimpleITKReader())(path)
    theirs = LoadImage(image_only=True, reader=NibabelReader())(path)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_allclose(ours.affine.numpy(), theirs.affine.numpy(), atol=1e-4)
    # several channel files stack on a new first axis
    second = write_image(_oblique_image(seed=1), tmp_path / "a_0001.nii.gz")
    both = LoadImaged(["img"], reader=imageio.SimpleITKReader(), image_only=True)({"img": [path, second]})["img"]
    assert both.shape == (2, 5, 6, 7)
    assert np.array_equal(both[0].numpy(), ours.numpy())


def test_monai_reader_rejects_mismatched_channels(tmp_path):
    a = write_image(_oblique_image(), tmp_path / "c_0000.nii.gz")
    shifted = _oblique_image(seed=1)
    shifted.SetOrigin((11.0, -20.0, 5.0))
    b = write_image(shifted, tmp_path / "c_0001.nii.gz")
    with pytest.raises(InputError, match="c_0001.nii.gz: channel grid differs .*origin"):
        imageio.SimpleITKReader().read([a, b])


def test_geometry_dict_round_trip_and_mismatch():
    geo = Geometry.from_image(_oblique_image())
    assert Geometry.from_dict(geo.to_dict()) == geo
    assert geo.matches(Geometry(geo.origin, geo.spacing, geo.direction, (5, 6, 8))).startswith("size")
    assert geo.matches(Geometry(geo.origin, (1.25, 0.75, 3.1), geo.direction, geo.size)).startswith("spacing")
    moved = (geo.origin[0] + 0.5,) + geo.origin[1:]
    assert geo.matches(Geometry(moved, geo.spacing, geo.direction, geo.size)).startswith("origin")
    with pytest.raises(InputError, match="missing key"):
        Geometry.from_dict({"origin": [0, 0, 0]})
    with pytest.raises(InputError, match="inconsistent lengths"):
        Geometry.from_dict({**geo.to_dict(), "spacing": [1, 1]})


def test_read_errors_are_one_line_input_errors(tmp_path):
    good = write_image(_oblique_image(shape_zyx=(20, 20, 20)), tmp_path / "good.nii.gz")
    with pytest.raises(InputError, match="missing.nii.gz: file not found"):
        read_image(tmp_path / "missing.nii.gz")
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported image format"):
        read_image(tmp_path / "a.png")
    (tmp_path / "junk.nrrd").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="junk.nrrd: cannot read image"):
        read_image(tmp_path / "junk.nrrd")
    with pytest.raises(InputError, match="junk.nrrd: cannot read image header"):
        read_header(tmp_path / "junk.nrrd")
    # ITK zero-fills truncated NIfTI voxels without complaint; we must not
    data = good.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="cut.nii.gz: file is truncated") as info:
        read_image(tmp_path / "cut.nii.gz")
    assert "\n" not in str(info.value)
    raw = write_image(_oblique_image(shape_zyx=(20, 20, 20)), tmp_path / "raw.nii")
    (tmp_path / "cut.nii").write_bytes(raw.read_bytes()[:-100])
    with pytest.raises(InputError, match="cut.nii: file is truncated"):
        read_header(tmp_path / "cut.nii")
    with pytest.raises(InputError, match="unsupported image format"):
        write_image(_oblique_image(), tmp_path / "out.png")
    two_d = write_image(sitk.Image(4, 4, sitk.sitkUInt8), tmp_path / "flat.nrrd")
    with pytest.raises(InputError, match="expected a 3D image"):
        read_image(two_d)
