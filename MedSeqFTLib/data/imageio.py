"""Reading and writing medical images with SimpleITK, and their geometry.

Two coordinate conventions meet here:

* SimpleITK/ITK (and DICOM, NRRD, Slicer) describe physical space in **LPS** and store voxels
  so that ``sitk.GetArrayFromImage`` returns ``(Z, Y, X)``.
* MONAI (and NIfTI, nibabel) use a 4x4 **RAS** affine and arrays indexed ``(X, Y, Z)``.

``sitk_to_ras_array`` / ``ras_array_to_sitk`` convert between the two without resampling, and
``SimpleITKReader`` plugs the same conversion into ``monai.transforms.LoadImaged`` so every
format SimpleITK reads (NIfTI, NRRD, MetaImage) arrives as a MetaTensor with MONAI's affine.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io.atomic import atomic_write_with

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Geometry",
    "ImageHeader",
    "image_suffix",
    "read_image",
    "read_header",
    "write_image",
    "sitk_to_ras_array",
    "ras_array_to_sitk",
    "lps_to_ras_affine",
    "SimpleITKReader",
]

# longest first, so ".nii.gz" wins over ".gz"-less ".nii"
SUPPORTED_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

# ITK's LPS world and NIfTI/MONAI's RAS world differ by a sign flip of x and y
_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def image_suffix(path: str | Path) -> Optional[str]:
    """The supported image suffix of ``path`` (``".nii.gz"``, ``".nrrd"``, ...), or ``None``."""
    name = Path(path).name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def _short_reason(exc: Exception, path: Path) -> str:
    # ITK messages span several lines with source locations and object addresses, and may end
    # with a stale errno ("Reason: No such file or directory") for a file that does exist
    text = str(exc).replace(str(path), "the file")
    if "Unable to determine ImageIO reader" in text:
        return "not a readable image file: corrupt, truncated or of another format"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if "ITK ERROR:" in ln), None)
    if first is not None:
        parts = [lines[first].split("ITK ERROR:", 1)[1].split("): ", 1)[-1]]
        parts += [ln for ln in lines[first + 1:] if not ln.startswith("Reason:")]
        reason = " ".join(parts)
    else:
        reason = lines[-1] if lines else exc.__class__.__name__
    for prefix in ("description:", "sitk::error:"):
        if reason.lower().startswith(prefix):
            reason = reason[len(prefix):].strip()
    # nrrd chains many "trouble" lines; its last words say what went wrong
    return reason if len(reason) <= 200 else reason[:60] + " ... " + reason[-135:]


def _check_readable(path: Path) -> None:
    if image_suffix(path) is None:
        raise InputError(path, f"unsupported image format; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "is not a file")


def _nifti_expected_bytes(head: bytes) -> Optional[int]:
    """Bytes a complete NIfTI-1/2 file holds (header + voxels), from its first 540 bytes."""
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            bitpix = struct.unpack(endian + "h", head[72:74])[0]
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", head[14:16])[0]
            dims = struct.unpack(endian + "8q", head[16:80])
            offset = struct.unpack(endian + "q", head[168:176])[0]
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        return None
    return max(offset, 348) + int(np.prod([max(d, 1) for d in dims[1:ndim + 1]], dtype=np.int64)) * bitpix // 8


def _nifti_truncation(path: Path, suffix: str, header_only: bool = False) -> Optional[str]:
    """Why a NIfTI file is incomplete, or ``None``.

    ITK's NIfTI reader fills missing voxels with zeros instead of failing, so a truncated
    download would silently become a half-empty volume; count the bytes ourselves.
    """
    if suffix == ".nii":
        with open(path, "rb") as fh:
            expected = _nifti_expected_bytes(fh.read(540))
        size = path.stat().st_size
        if expected is not None and size < expected:
            return f"file is truncated: {size} bytes, the header promises {expected}"
        return None
    if suffix != ".nii.gz" or header_only:
        return None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total, head = 0, b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                out = inflater.decompress(chunk)
                if len(head) < 540:
                    head += out[:540 - len(head)]
                total += len(out)
                if inflater.eof:
                    break
    except zlib.error as exc:
        return f"corrupt gzip stream ({exc})"
    expected = _nifti_expected_bytes(head)
    if not inflater.eof or (expected is not None and total < expected):
        return "file is truncated: the gzip stream ends before the image data does"
    return None


@dataclass(frozen=True)
class Geometry:
    """Where an image's voxel grid lies in physical (LPS, millimetre) space, as ITK stores it.

    Attributes:
        origin: physical position of voxel (0, 0, 0), LPS, mm.
        spacing: voxel size per axis (x, y, z), mm.
        direction: row-major direction cosines (9 numbers for 3D); column i is axis i.
        size: voxels per axis (x, y, z).
    """

    origin: tuple
    spacing: tuple
    direction: tuple
    size: tuple

    @classmethod
    def from_image(cls, img: sitk.Image | sitk.ImageFileReader) -> "Geometry":
        """Geometry of a ``sitk.Image`` (or of an ``ImageFileReader`` after ReadImageInformation)."""
        return cls(
            origin=tuple(float(v) for v in img.GetOrigin()),
            spacing=tuple(float(v) for v in img.GetSpacing()),
            direction=tuple(float(v) for v in img.GetDirection()),
            size=tuple(int(v) for v in img.GetSize()),
        )

    def to_dict(self) -> dict:
        return {"origin": list(self.origin), "spacing": list(self.spacing),
                "direction": list(self.direction), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "geometry") -> "Geometry":
        """Inverse of ``to_dict``. Raises ``InputError`` on missing keys or wrong lengths."""
        if not isinstance(data, dict):
            raise InputError(where, f"expected an object with origin/spacing/direction/size, got {type(data).__name__}")
        missing = [k for k in ("origin", "spacing", "direction", "size") if k not in data]
        if missing:
            raise InputError(where, f"missing key(s) {missing}")
        try:
            geo = cls(tuple(float(v) for v in data["origin"]), tuple(float(v) for v in data["spacing"]),
                      tuple(float(v) for v in data["direction"]), tuple(int(v) for v in data["size"]))
        except (TypeError, ValueError) as exc:
            raise InputError(where, f"non-numeric value ({exc})") from None
        dim = len(geo.size)
        if len(geo.origin) != dim or len(geo.spacing) != dim or len(geo.direction) != dim * dim:
            raise InputError(where, f"inconsistent lengths for a {dim}D geometry")
        return geo

    def apply_to(self, img: sitk.Image) -> sitk.Image:
        """Set origin, spacing and direction of ``img`` (whose size must match) in place; returns it."""
        if tuple(img.GetSize()) != tuple(self.size):
            raise ValueError(f"image size {img.GetSize()} differs from geometry size {self.size}")
        img.SetOrigin(self.origin)
        img.SetSpacing(self.spacing)
        img.SetDirection(self.direction)
        return img

    def matches(self, other: "Geometry", tol: float = 1e-4) -> Optional[str]:
        """``None`` if both grids coincide, else a short description of the first difference.

        ``tol`` is relative to the spacing for origins (a fraction of a voxel) and absolute for
        spacing (relative) and direction cosines.
        """
        if tuple(self.size) != tuple(other.size):
            return f"size {tuple(self.size)} vs {tuple(other.size)}"
        sp_a, sp_b = np.asarray(self.spacing), np.asarray(other.spacing)
        if not np.allclose(sp_a, sp_b, rtol=tol, atol=0):
            return f"spacing {tuple(np.round(sp_a, 4))} vs {tuple(np.round(sp_b, 4))}"
        if not np.allclose(self.direction, other.direction, rtol=0, atol=tol):
            return f"direction {tuple(np.round(self.direction, 4))} vs {tuple(np.round(other.direction, 4))}"
        o_a, o_b = np.asarray(self.origin), np.asarray(other.origin)
        if np.any(np.abs(o_a - o_b) > tol * np.maximum(sp_a, 1e-6)):
            return f"origin {tuple(np.round(o_a, 3))} vs {tuple(np.round(o_b, 3))}"
        return None

    def ras_affine(self) -> np.ndarray:
        """4x4 RAS affine mapping (x, y, z, 1) voxel indices to RAS millimetres."""
        dim = len(self.size)
        direction = np.asarray(self.direction, dtype=np.float64).reshape(dim, dim)
        lps = np.eye(4)
        lps[:dim, :dim] = direction @ np.diag(self.spacing)
        lps[:dim, 3] = self.origin
        return _LPS_RAS @ lps


@dataclass(frozen=True)
class ImageHeader:
    """What ``read_header`` learns without reading voxels."""

    geometry: Geometry
    dimension: int
    components: int
    pixel_type: str


def read_header(path: str | Path) -> ImageHeader:
    """Read only the header of an image file.

    Raises:
        InputError: missing file, unsupported suffix, or a header SimpleITK cannot parse.
    """
    path = Path(path)
    _check_readable(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(path, f"cannot read image header ({_short_reason(exc, path)})") from None
    problem = _nifti_truncation(path, image_suffix(path), header_only=True)
    if problem is not None:
        raise InputError(path, problem)
    return ImageHeader(
        geometry=Geometry.from_image(reader),
        dimension=int(reader.GetDimension()),
        components=int(reader.GetNumberOfComponents()),
        pixel_type=sitk.GetPixelIDValueAsString(reader.GetPixelID()),
    )


def read_image(path: str | Path, require_3d: bool = True) -> sitk.Image:
    """Read an image file with SimpleITK.

    Args:
        path: a file with one of ``SUPPORTED_SUFFIXES``.
        require_3d: reject images that are not three-dimensional.

    Raises:
        InputError: missing file, unsupported suffix, corrupt or truncated file, wrong dimension.
    """
    path = Path(path)
    _check_readable(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(path, f"cannot read image ({_short_reason(exc, path)})") from None
    problem = _nifti_truncation(path, image_suffix(path))
    if problem is not None:
        raise InputError(path, problem)
    if require_3d and img.GetDimension() != 3:
        raise InputError(path, f"expected a 3D image, got {img.GetDimension()}D of size {img.GetSize()}")
    return img


def write_image(img: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``img`` atomically; the format follows the suffix of ``path``.

    SimpleITK picks the writer from the file extension, so the temporary file is given the
    real suffix and then moved onto the temporary path of ``atomic_write_with``.

    Raises:
        InputError: unsupported suffix.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix is None:
        raise InputError(path, f"unsupported image format; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if suffix in (".mhd", ".nhdr"):
        # detached headers name their data file: a temporary name would be baked into the header
        raise InputError(path, f"writing {suffix} (detached header) is not supported; use .mha or .nrrd")

    def writer(tmp: Path) -> None:
        staged = tmp.with_name(tmp.name + suffix)
        try:
            sitk.WriteImage(img, str(staged), compress)
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)

    return atomic_write_with(path, writer)


def lps_to_ras_affine(img: sitk.Image) -> np.ndarray:
    """4x4 RAS affine of a 3D ``sitk.Image`` (voxel index (x, y, z) -> RAS mm)."""
    return Geometry.from_image(img).ras_affine()


def sitk_to_ras_array(img: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of ``img`` indexed (X, Y, Z) plus its RAS affine, without resampling.

    Returns:
        ``(array, affine)``: array of shape (X, Y, Z) (or (X, Y, Z, C) for vector pixels) in
        the image's own pixel type, and the 4x4 float64 RAS affine (MONAI/nibabel convention).
    """
    arr = sitk.GetArrayFromImage(img)
    dim = img.GetDimension()
    axes = tuple(range(dim - 1, -1, -1)) + tuple(range(dim, arr.ndim))
    return np.ascontiguousarray(np.transpose(arr, axes)), lps_to_ras_affine(img)


def ras_array_to_sitk(array: np.ndarray, affine: np.ndarray, dtype: Optional[np.dtype] = None) -> sitk.Image:
    """Inverse of ``sitk_to_ras_array`` for a scalar 3D volume.

    Args:
        array: (X, Y, Z) voxels (a leading channel of 1 is dropped).
        affine: 4x4 RAS affine of ``array``; its columns may be scaled (spacing) but must be
            orthogonal, as after any MONAI spatial transform without shear.
        dtype: cast the voxels first (e.g. ``np.uint8`` for labels).

    Raises:
        ValueError: wrong array rank or a singular affine.
    """
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"expected an (X, Y, Z) array, got shape {array.shape}")
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    lps = _LPS_RAS @ np.asarray(affine, dtype=np.float64)
    linear = lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(linear)) < 1e-12:
        raise ValueError(f"singular affine {affine.tolist()}")
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetDirection(tuple(float(v) for v in (linear / spacing).ravel()))
    img.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    return img


def _monai_reader_base():
    # MONAI is heavy; only modules that really load through MONAI pay for importing it
    from monai.data import ImageReader

    return ImageReader


def _make_reader_class():
    from monai.data.image_reader import _copy_compatible_dict, _stack_images
    from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

    ImageReader = _monai_reader_base()

    class SimpleITKReader(ImageReader):
        """MONAI ``ImageReader`` backed by SimpleITK (no ITK-Python needed).

        ``LoadImaged(keys, reader=SimpleITKReader())`` yields MetaTensors whose array is
        (X, Y, Z) and whose ``affine`` is RAS, identical to ``NibabelReader`` on NIfTI files.
        Several files (one per channel, nnU-Net ``_0000``, ``_0001``...) are stacked on a new
        first axis; their grids must coincide.

        Args:
            dtype: voxel type of the returned arrays (``None`` keeps the file's type).
        """

        def __init__(self, dtype=np.float32, **kwargs):
            super().__init__()
            self.dtype = dtype
            self.kwargs = kwargs

        def verify_suffix(self, filename: Sequence[str | Path] | str | Path) -> bool:
            return all(image_suffix(f) is not None for f in ensure_tuple(filename))

        def read(self, data: Sequence[str | Path] | str | Path, **kwargs):
            """Read one file (returns a ``sitk.Image``) or several (returns a list).

            Raises:
                InputError: unreadable file, or channel files whose grids differ.
            """
            names = [Path(f) for f in ensure_tuple(data)]
            images = [read_image(n) for n in names]
            first = Geometry.from_image(images[0])
            for name, img in zip(names[1:], images[1:]):
                problem = first.matches(Geometry.from_image(img))
                if problem is not None:
                    raise InputError(name, f"channel grid differs from {names[0].name}: {problem}")
            return images if len(images) > 1 else images[0]

        def get_data(self, img) -> tuple[np.ndarray, dict]:
            arrays, meta = [], {}
            # a sitk.Image is itself iterable (over pixels): never pass it to ensure_tuple
            for one in ([img] if isinstance(img, sitk.Image) else list(img)):
                data, affine = sitk_to_ras_array(one)
                if self.dtype is not None:
                    data = data.astype(self.dtype, copy=False)
                header = {
                    MetaKeys.ORIGINAL_AFFINE: affine,
                    MetaKeys.AFFINE: affine.copy(),
                    MetaKeys.SPACE: SpaceKeys.RAS,
                    MetaKeys.SPATIAL_SHAPE: np.asarray(one.GetSize()),
                    # vector pixels come out channel-last; scalar volumes have no channel axis
                    MetaKeys.ORIGINAL_CHANNEL_DIM: -1 if one.GetNumberOfComponentsPerPixel() > 1 else float("nan"),
                    "spacing": np.asarray(one.GetSpacing()),
                }
                arrays.append(data)
                _copy_compatible_dict(header, meta)
            return _stack_images(arrays, meta), meta

    # lets pickle (DataLoader workers) find the class through the module's __getattr__
    SimpleITKReader.__qualname__ = "SimpleITKReader"
    SimpleITKReader.__module__ = __name__
    return SimpleITKReader


_READER_CLASS = None


def __getattr__(name: str):
    # module-level lazy attribute: ``from .imageio import SimpleITKReader`` imports MONAI only then
    global _READER_CLASS
    if name == "SimpleITKReader":
        if _READER_CLASS is None:
            _READER_CLASS = _make_reader_class()
        return _READER_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
