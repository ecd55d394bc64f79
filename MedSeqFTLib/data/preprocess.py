"""From image files to network input, and from network output back to the input's grid.

The forward path is a MONAI dictionary pipeline:

    LoadImaged(SimpleITKReader) -> EnsureChannelFirstd -> Orientationd("RAS") -> Spacingd
    -> [CropForegroundd on the body] -> CT "window": ScaleIntensityRanged(window -> [0, 1], clip)
                                        CT "ct_zscore": clip to the dataset's foreground
                                            percentiles, z-score with its foreground mean/std
                                        otherwise: NormalizeIntensityd(nonzero, channel-wise)
    -> SpatialPadd(to at least the patch size)

The normalisation is chosen per channel from its modality (``data.normalisation``): a CT+PET
case windows (or z-scores with the CT statistics) its CT channel and z-scores its PET channel.
Channels of different modalities are split into keys of their own for resampling, cropping and
normalisation (``SplitDimd`` ... ``ConcatItemsd``); channels of one modality stay one key.

Cropping happens before the intensity step so that CT can find the body in Hounsfield units
(anything above -500 HU) and MR in raw intensities (anything above 0); the body is read on one
channel, the first CT channel if there is one (``normalisation.body_channel``).

The way back (``to_original_space``) needs only the prepared array's RAS affine and the original
image's grid: the prediction is resampled with nearest neighbour onto the original origin,
spacing, direction and size, whatever the orientation or obliqueness of the input.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..config import PreprocessConfig
from ..errors import InputError
from ..io.atomic import atomic_write_with
from .imageio import Geometry, ras_array_to_sitk, read_header
from .normalisation import (CROP_MARGIN, CT_BODY_HU, as_channel_modalities, body_channel, body_select_fn,
                            channel_schemes, is_ct, normalise_steps)

__all__ = [
    "PreparedCase",
    "prepare_case",
    "prepare_cached",
    "prepare_image_for_inference",
    "to_original_space",
    "save_prepared",
    "load_prepared",
    "is_ct",
    "CT_BODY_HU",
    "CROP_MARGIN",
]

CACHE_VERSION = 1
Modality = Union[str, Sequence[str]]  # one name for every channel, or one per channel


@dataclass
class PreparedCase:
    """One case ready for training or inference.

    Attributes:
        image: (C, X, Y, Z) float32, RAS, target spacing, normalised.
        label: (1, X, Y, Z) uint8 on the same grid, or ``None`` for unlabelled cases.
        geometry: grid of the ORIGINAL first image file (LPS origin/spacing/direction/size).
        affine: 4x4 RAS affine of ``image`` (voxel index -> RAS mm).
    """

    image: np.ndarray
    label: Optional[np.ndarray]
    geometry: Geometry
    affine: np.ndarray

    @property
    def spatial_shape(self) -> tuple:
        return tuple(self.image.shape[1:])


def _transforms(cfg: PreprocessConfig, modalities: list, with_label: bool):
    """The MONAI pipeline for channels of ``modalities`` (one per channel)."""
    from monai.transforms import Compose, CropForegroundd, EnsureChannelFirstd, Orientationd, Spacingd, SpatialPadd

    schemes = channel_schemes(modalities, cfg.normalization)
    body = body_channel(modalities)
    label_keys = ["label"] if with_label else []
    steps = [EnsureChannelFirstd(["image", *label_keys]),
             Orientationd(["image", *label_keys], axcodes="RAS", labels=None)]  # None: the MetaTensor space (RAS)
    if len(set(schemes)) == 1 and len({is_ct(m) for m in modalities}) == 1:
        image_keys = ["image"]
        ct = [is_ct(modalities[0])]
    else:
        # channels of different modalities resample, pad and normalise each on its own key
        from monai.transforms import SplitDimd

        image_keys = [f"image_{k}" for k in range(len(modalities))]
        ct = [is_ct(m) for m in modalities]
        steps.append(SplitDimd("image", output_postfixes=[str(k) for k in range(len(modalities))], dim=0))
    keys = image_keys + label_keys
    # outside the source grid: CT repeats its border (0 HU would be tissue), others and labels get 0
    steps.append(Spacingd(keys, pixdim=cfg.spacing, mode=["bilinear"] * len(image_keys) + ["nearest"] * len(label_keys),
                          padding_mode=["border" if c else "zeros" for c in ct] + ["zeros"] * len(label_keys),
                          dtype=np.float32))
    if cfg.crop_foreground:
        # the body is found on one channel (body_channel says why) and every key is cut to it
        source, channels = ("image", [body]) if image_keys == ["image"] else (image_keys[body], None)
        steps.append(CropForegroundd(keys, source_key=source, select_fn=body_select_fn(modalities[body]),
                                     channel_indices=channels, margin=CROP_MARGIN, allow_smaller=True))
    if image_keys == ["image"]:
        steps += normalise_steps("image", schemes[0], cfg)
    else:
        from monai.transforms import ConcatItemsd, DeleteItemsd

        for key, scheme in zip(image_keys, schemes):
            steps += normalise_steps(key, scheme, cfg)
        steps += [ConcatItemsd(image_keys, "image", dim=0), DeleteItemsd(image_keys)]
    steps.append(SpatialPadd(["image", *label_keys], spatial_size=cfg.patch_size, mode="constant"))
    return Compose(steps)


def _load(image_paths: Sequence[Path], label_path: Optional[Path]) -> tuple[dict, Geometry]:
    from monai.transforms import LoadImaged

    from .imageio import SimpleITKReader

    image_paths = [Path(p) for p in image_paths]
    if not image_paths:
        raise InputError("images", "no image file given")
    geometry = read_header(image_paths[0]).geometry
    if label_path is not None:
        label_geo = read_header(label_path).geometry
        problem = geometry.matches(label_geo, tol=1e-3)
        if problem is not None:
            raise InputError(label_path, f"label grid differs from image {image_paths[0].name}: {problem}")
    reader = SimpleITKReader()
    data = {"image": [str(p) for p in image_paths] if len(image_paths) > 1 else str(image_paths[0])}
    keys = ["image"]
    if label_path is not None:
        data["label"] = str(label_path)
        keys.append("label")
    # passing the reader at call time lets its InputError through; LoadImaged would otherwise
    # swallow it and try its other registered readers
    loaded = LoadImaged(keys, reader=reader, image_only=True)(data, reader)
    return loaded, geometry


def _run(image_paths, label_path, cfg: PreprocessConfig, modality: Modality) -> PreparedCase:
    modalities = as_channel_modalities(modality, len(image_paths))
    data, geometry = _load(image_paths, label_path)
    out = _transforms(cfg, modalities, label_path is not None)(data)
    image = out["image"]
    label = None
    if label_path is not None:
        lab = out["label"].numpy()
        if lab.shape[0] != 1:
            raise InputError(label_path, f"label must have one channel, got {lab.shape[0]}")
        label = np.rint(lab).astype(np.uint8)
    return PreparedCase(
        image=image.numpy().astype(np.float32, copy=False),
        label=label,
        geometry=geometry,
        affine=np.asarray(image.affine, dtype=np.float64),
    )


def prepare_case(image_paths: Sequence[Path], label_path: Optional[Path], cfg: PreprocessConfig,
                 modality: Modality) -> PreparedCase:
    """Load and preprocess one case.

    Args:
        image_paths: one file per channel (nnU-Net ``_0000``, ``_0001``...), same grid.
        label_path: integer label map on the same grid as the images, or ``None``.
        cfg: target spacing, CT window/statistics, normalisation of CT channels, patch size,
            foreground cropping.
        modality: one name for every channel (``"CT"``: ``cfg.normalization``; anything else:
            z-score inside the body), or one per channel (``["CT", "PET"]``, the task's
            ``channel_modalities``), each channel then normalised by its own.

    Returns:
        A ``PreparedCase``; image (C, X, Y, Z) float32, label (1, X, Y, Z) uint8 or ``None``.

    Raises:
        InputError: unreadable file, channel or label grid different from the first image's, an
            empty modality, or a modality list of another length than ``image_paths``.
    """
    return _run(image_paths, label_path, cfg, modality)


def prepare_image_for_inference(image_paths: Sequence[Path], cfg: PreprocessConfig,
                                modality: Modality) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess images without a label, exactly as for training (``modality`` as in ``prepare_case``).

    Returns:
        ``(image, affine)``: (C, X, Y, Z) float32 and its 4x4 RAS affine, to be given to
        ``to_original_space`` together with the prediction.
    """
    case = _run(image_paths, None, cfg, modality)
    return case.image, case.affine


def _reference_image(reference):
    import SimpleITK as sitk

    if isinstance(reference, sitk.Image):
        return reference
    if isinstance(reference, Geometry):
        ref = sitk.Image([int(s) for s in reference.size], sitk.sitkUInt8)
        return reference.apply_to(ref)
    raise TypeError(f"reference must be a SimpleITK image or a Geometry, got {type(reference).__name__}")


def to_original_space(label_array: np.ndarray, prepared_affine: np.ndarray,
                      reference: Union["sitk.Image", Geometry], interpolator: str = "nearest"):  # noqa: F821
    """Put a prediction made on the prepared grid back onto the original image grid.

    Args:
        label_array: (X, Y, Z) (or (1, X, Y, Z)) array on the prepared grid.
        prepared_affine: the 4x4 RAS affine of the prepared array.
        reference: the original image (or its ``Geometry``); the output takes its origin,
            spacing, direction and size exactly.
        interpolator: ``"nearest"`` for labels (output uint8), ``"linear"`` for probabilities
            (output float32).

    Returns:
        A ``sitk.Image`` on the reference grid; voxels outside the prepared field of view are 0.
    """
    import SimpleITK as sitk

    if interpolator not in ("nearest", "linear"):
        raise ValueError(f"interpolator must be 'nearest' or 'linear', got {interpolator!r}")
    nearest = interpolator == "nearest"
    dtype = np.uint8 if nearest else np.float32
    moving = ras_array_to_sitk(np.asarray(label_array), prepared_affine, dtype=dtype)
    ref = _reference_image(reference)
    return sitk.Resample(moving, ref, sitk.Transform(),
                         sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, 0.0,
                         sitk.sitkUInt8 if nearest else sitk.sitkFloat32)


# ---------------------------------------------------------------- cache files

def save_prepared(case: PreparedCase, path: str | Path, cache_key: str = "") -> Path:
    """Write ``case`` to a compressed ``.npz`` atomically (no pickled objects inside)."""
    arrays = {
        "image": case.image.astype(np.float32, copy=False),
        "affine": np.asarray(case.affine, dtype=np.float64),
        "geometry_origin": np.asarray(case.geometry.origin, dtype=np.float64),
        "geometry_spacing": np.asarray(case.geometry.spacing, dtype=np.float64),
        "geometry_direction": np.asarray(case.geometry.direction, dtype=np.float64),
        "geometry_size": np.asarray(case.geometry.size, dtype=np.int64),
        "cache_key": np.asarray(cache_key),
    }
    if case.label is not None:
        arrays["label"] = case.label.astype(np.uint8, copy=False)

    def writer(tmp: Path) -> None:
        # a file object, because np.savez appends ".npz" to a path that lacks it
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    return atomic_write_with(path, writer)


def _load_npz(path: Path) -> tuple[PreparedCase, str]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            geo = Geometry(tuple(npz["geometry_origin"].tolist()), tuple(npz["geometry_spacing"].tolist()),
                           tuple(npz["geometry_direction"].tolist()), tuple(int(v) for v in npz["geometry_size"]))
            case = PreparedCase(image=npz["image"], label=npz["label"] if "label" in npz.files else None,
                                geometry=geo, affine=npz["affine"])
            key = str(npz["cache_key"]) if "cache_key" in npz.files else ""
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a valid prepared-case file ({exc.__class__.__name__}: {exc})") from None
    if case.image.ndim != 4 or (case.label is not None and case.label.shape[1:] != case.image.shape[1:]):
        raise InputError(path, f"inconsistent arrays: image {case.image.shape}, label "
                               f"{None if case.label is None else case.label.shape}")
    return case, key


def load_prepared(path: str | Path) -> PreparedCase:
    """Read a file written by ``save_prepared``.

    Raises:
        InputError: missing, truncated or malformed file.
    """
    return _load_npz(Path(path))[0]


def cache_key(image_paths: Sequence[Path], label_path: Optional[Path], cfg: PreprocessConfig,
              modality: Modality) -> str:
    """Hash of everything a prepared case depends on: the sources' size and mtime, the settings,
    and (several channels) each channel's scheme and the channel the body is found on."""
    modalities = as_channel_modalities(modality, len(image_paths))
    sources = []
    for p in [*image_paths, *([label_path] if label_path is not None else [])]:
        p = Path(p)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise InputError(p, "file not found") from None
        sources.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    settings = cfg.to_dict()
    settings.pop("pos_fraction", None)  # sampling only, the arrays do not depend on it
    # one channel keeps the key of before, so existing caches stay valid
    content = {"v": CACHE_VERSION, "cfg": settings, "modality": "CT" if is_ct(modalities[0]) else "MR",
               "sources": sources}
    if len(modalities) > 1:
        content["channels"] = {"schemes": channel_schemes(modalities, cfg.normalization),
                               "ct": [is_ct(m) for m in modalities], "body": body_channel(modalities)}
    blob = json.dumps(content, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def prepare_cached(case_id: str, image_paths: Sequence[Path], label_path: Optional[Path], cfg: PreprocessConfig,
                   modality: Modality, cache_dir: str | Path) -> PreparedCase:
    """``prepare_case`` through a cache file ``cache_dir/<case_id>.npz``.

    The cache is reused only if the source files (size, modification time) and the settings
    are unchanged; a stale or damaged cache file is silently rebuilt.
    """
    if not case_id or "/" in case_id or "\\" in case_id or case_id.startswith("."):
        raise InputError("case_id", f"not usable as a file name: {case_id!r}")
    key = cache_key(image_paths, label_path, cfg, modality)
    path = Path(cache_dir) / f"{case_id}.npz"
    if path.exists():
        try:
            case, stored = _load_npz(path)
        except InputError:
            stored = None
        if stored == key:
            return case
    case = prepare_case(image_paths, label_path, cfg, modality)
    save_prepared(case, path, cache_key=key)
    return case
