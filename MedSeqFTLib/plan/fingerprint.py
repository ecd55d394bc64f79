"""Dataset fingerprint: what nnU-Net v2 measures on the training cases before it plans.

``compute_fingerprint`` reads every labelled case once and returns a JSON-serialisable dict
(``None`` wherever nnU-Net would write NaN)::

    {
      "version": 1,
      "modality": "CT",                      # CT, MR, PET or other (the task's)
      "channel_modalities": ["CT", "PET"],   # one per channel: CT drops per_case, CT channels
                                             # are pooled in ct_foreground
      "n_cases": 8,                          # labelled cases read (unlabelled ones are skipped)
      "labels": {"background": 0, "liver": 1},
      "samples_per_case": 10000, "seed": 1234,
      "cases": [                             # one per labelled case, in input order
        {"id": "case_000",
         "spacing": [x, y, z],               # mm, RAS axis order (as preprocessing sees it)
         "size": [x, y, z],                  # voxels, RAS axis order
         "direction": [d0, ..., d8],         # the file's ITK (LPS) direction cosines, row-major
         "size_after_crop": [x, y, z],       # box around the nonzero region, RAS axis order
         "relative_size_after_crop": 0.83},  # voxels in that box / voxels in the image
        ...],
      "channels": [                          # one per image channel (_0000, _0001, ...)
        {"foreground": {"mean", "std", "median", "min", "max",
                        "percentile_00_5", "percentile_99_5", "n_samples"},
         "per_case": [{"id", "mean", "std"}, ...]},   # None for a CT channel
        ...],
      "ct_foreground": {...},                # only with >= 2 CT channels: their pooled samples
      "classes": {                           # every label value except 0, keyed by name
        "liver": {"value": 1, "cases_present": 8,
                  "voxels": {"median", "min", "max"},   # over the cases where it is present;
                  "mm3": {"median", "min", "max"}},     # None for all three if never present
        ...},
    }

RAS axis order: preprocessing reorients every case to RAS (MONAI ``Orientationd``), so x, y, z
here are the RAS axes. Each file axis is mapped to the RAS axis it is closest to, exactly as
``Orientationd`` does (``nibabel.orientations.io_orientation`` on the RAS affine); with an
identity direction the order is the file's own (x, y, z).

The definitions follow nnU-Net v2 (``nnunetv2/preprocessing/cropping/cropping.py`` and
``nnunetv2/experiment_planning/dataset_fingerprint/fingerprint_extractor.py``):

* nonzero region: voxels where any channel != 0, holes filled (``create_nonzero_mask``); the
  crop box is its bounding box, the whole image when the region is empty (acvl_utils'
  ``get_bbox_from_mask``);
* foreground intensities (``collect_foreground_intensities``): per case, the voxels with
  label > 0 inside the crop box, as float32 in the file's (z, y, x) array order; each channel in
  turn draws ``samples_per_case`` of them *with replacement* from one
  ``np.random.RandomState(seed)`` per case; the draws of all cases are pooled and summarised
  with the same numpy calls nnU-Net uses. nnU-Net's own run draws 1e8 / n_cases voxels per case
  (``num_foreground_voxels_for_intensitystats``); we default to 10,000, the default of
  ``collect_foreground_intensities``, which keeps memory small; with the same budget both give
  the same numbers (Testing/plan/test_spacing_nnunet.py);
* ``per_case`` mean/std: every voxel of the nonzero region (holes filled), the region nnU-Net's
  z-score normalisation uses for non-CT channels when it normalises inside the mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..data.imageio import Geometry, read_image
from ..data.modality import normalise_modality
from ..errors import InputError

__all__ = ["FINGERPRINT_VERSION", "compute_fingerprint", "ras_axis_order"]

FINGERPRINT_VERSION = 1
SEED = 1234  # nnU-Net's collect_foreground_intensities default
_PERCENTILES = np.array((0.5, 50.0, 99.5))


def ras_axis_order(geometry: Geometry) -> list[int]:
    """For each RAS axis (x, y, z), the file axis that preprocessing puts there.

    ``[file_spacing[i] for i in ras_axis_order(geo)]`` is the spacing in RAS order.
    """
    from nibabel.orientations import io_orientation

    ornt = io_orientation(geometry.ras_affine())
    order = [0] * len(geometry.size)
    for file_axis, (ras_axis, _flip) in enumerate(ornt):
        order[int(ras_axis)] = file_axis
    return order


def _check_labels(labels) -> dict[str, int]:
    if not isinstance(labels, dict) or not labels:
        raise InputError("labels", f"expected a non-empty {{name: value}} dict, got {labels!r}")
    out = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError("labels", f"value of {name!r} must be a non-negative integer, got {value!r}")
        out[str(name)] = int(value)
    if len(set(out.values())) != len(out):
        raise InputError("labels", f"label values must be distinct, got {out}")
    return out


def _check_case(i: int, case) -> None:
    where = f"cases[{i}]"
    if not isinstance(case, dict) or "id" not in case or "images" not in case:
        raise InputError(where, "expected {'id': str, 'images': [path per channel], 'label': path or None}")
    images = case["images"]
    if isinstance(images, (str, Path)) or not isinstance(images, Sequence) or not images:
        raise InputError(where, f"'images' must be a non-empty list of paths, got {images!r}")


def _scalar_array(img: sitk.Image, path: Path) -> np.ndarray:
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"expected a scalar image, got {img.GetNumberOfComponentsPerPixel()} components per voxel")
    return sitk.GetArrayFromImage(img)  # (z, y, x)


def _bbox(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open bounding box per array axis; the full extent where ``mask`` is empty."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        box.append((int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, mask.shape[axis]))
    return box


def _summary(values: list) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def _foreground_stats(pool: np.ndarray) -> dict:
    # the same numpy calls on the same float32 pool as DatasetFingerprintExtractor.run
    if pool.size == 0:
        return {k: None for k in ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")} \
            | {"n_samples": 0}
    p005, median, p995 = np.percentile(pool, _PERCENTILES)
    return {"mean": float(np.mean(pool)), "std": float(np.std(pool)), "median": float(median),
            "min": float(np.min(pool)), "max": float(np.max(pool)),
            "percentile_00_5": float(p005), "percentile_99_5": float(p995), "n_samples": int(pool.size)}


def _analyse_case(case: dict, label_values: dict[int, str], n_channels: Optional[int], ct: Sequence[bool],
                  samples_per_case: int, seed: int) -> dict:
    """Everything the fingerprint needs from one case (arrays are dropped before returning)."""
    paths = [Path(p) for p in case["images"]]
    label_path = Path(case["label"])
    if n_channels is not None and len(paths) != n_channels:
        raise InputError(paths[0], f"case {case['id']!r} has {len(paths)} channel file(s), "
                                   f"the first case has {n_channels}")
    if len(ct) != len(paths):
        raise InputError(paths[0], f"case {case['id']!r} has {len(paths)} channel file(s) but {len(ct)} channel "
                                   "modalities were given")
    images = [read_image(p) for p in paths]
    geo = Geometry.from_image(images[0])
    for p, img in zip(paths[1:], images[1:]):
        if tuple(img.GetSize()) != geo.size:
            raise InputError(p, f"size {img.GetSize()} differs from {paths[0].name} {geo.size}")
    label_img = read_image(label_path)
    if tuple(label_img.GetSize()) != geo.size:
        raise InputError(label_path, f"label size {label_img.GetSize()} differs from image size {geo.size} "
                                     f"({paths[0].name})")

    # (C, z, y, x) float32, as nnU-Net's SimpleITKIO.read_images returns it
    data = np.stack([_scalar_array(img, p) for p, img in zip(paths, images)]).astype(np.float32, casting="unsafe")
    label = _scalar_array(label_img, label_path)

    values, counts = np.unique(label, return_counts=True)
    if not np.all(values == np.round(values)):
        odd = values[values != np.round(values)][:5].tolist()
        raise InputError(label_path, f"label values must be integers, found {odd}")
    unknown = sorted(int(v) for v in values if int(v) not in label_values)
    if unknown:
        raise InputError(label_path, f"label value(s) {unknown} are not in the dataset's labels {sorted(label_values)}")

    from scipy.ndimage import binary_fill_holes

    nonzero = data[0] != 0
    for c in range(1, data.shape[0]):
        nonzero |= data[c] != 0
    region = binary_fill_holes(nonzero)
    box = _bbox(region)
    crop = tuple(slice(a, b) for a, b in box)
    foreground = label[crop] > 0
    rs = np.random.RandomState(seed)
    samples, per_case = [], []
    for c in range(data.shape[0]):
        fg = data[c][crop][foreground]
        samples.append(rs.choice(fg, samples_per_case, replace=True) if fg.size else np.empty(0, np.float32))
        if not ct[c]:
            inside = data[c][region].astype(np.float64)
            per_case.append({"id": str(case["id"]),
                             "mean": float(np.mean(inside)) if inside.size else None,
                             "std": float(np.std(inside)) if inside.size else None})

    order = ras_axis_order(geo)
    crop_xyz = [b - a for a, b in box][::-1]  # array (z, y, x) -> file (x, y, z)
    voxel_mm3 = float(np.prod(geo.spacing))
    return {
        "case": {"id": str(case["id"]),
                 "spacing": [abs(geo.spacing[i]) for i in order],
                 "size": [geo.size[i] for i in order],
                 "direction": list(geo.direction),
                 "size_after_crop": [int(crop_xyz[i]) for i in order],
                 "relative_size_after_crop": float(np.prod(crop_xyz, dtype=np.float64)
                                                   / np.prod(geo.size, dtype=np.float64))},
        "samples": samples,
        "per_case": per_case,  # one entry per non-CT channel, in channel order
        "class_voxels": {int(v): int(n) for v, n in zip(values, counts) if int(v) != 0},
        "voxel_mm3": voxel_mm3,
    }


def compute_fingerprint(cases: Sequence[dict], modality: str, labels: dict,
                        progress: Optional[Callable[[int, int], None]] = None,
                        samples_per_case: int = 10_000, seed: int = SEED,
                        channel_modalities: Optional[Sequence[str]] = None) -> dict:
    """Fingerprint of a dataset's labelled cases (layout in the module docstring).

    Args:
        cases: task.json-style ``{"id": str, "images": [path per channel], "label": path or None}``;
            cases without a label are skipped.
        modality: ``"CT"``, ``"MR"``, ``"PET"`` or ``"other"`` (case-insensitive), the task's;
            every channel's when ``channel_modalities`` is ``None``.
        labels: the dataset's ``{name: value}``, background 0 included.
        progress: called as ``progress(done, total)`` after each labelled case.
        samples_per_case: foreground voxels drawn (with replacement) per case and channel.
        seed: seed of the per-case ``np.random.RandomState``.
        channel_modalities: one modality per channel (``["CT", "PET"]``); a CT channel has no
            per-case statistics, several CT channels get pooled ``ct_foreground`` statistics.

    Returns:
        The fingerprint dict; ``json.dumps(..., allow_nan=False)`` accepts it.

    Raises:
        InputError: no labelled case, a malformed case entry, bad ``modality``/``labels``, an
            unreadable/missing/non-3D file, channel or label grids of different sizes, a case
            with another number of channels (than the first case or ``channel_modalities``),
            non-integer label values or values not in ``labels`` (each naming the file).
    """
    modality = normalise_modality(modality, where="modality")
    labels = _check_labels(labels)
    if isinstance(samples_per_case, bool) or not isinstance(samples_per_case, (int, np.integer)) or samples_per_case < 1:
        raise InputError("samples_per_case", f"must be a positive integer, got {samples_per_case!r}")
    if isinstance(cases, (str, Path, dict)) or not isinstance(cases, Sequence):
        raise InputError("cases", f"expected a list of case dicts, got {type(cases).__name__}")
    for i, case in enumerate(cases):
        _check_case(i, case)
    labelled = [c for c in cases if c.get("label") is not None]
    if not labelled:
        raise InputError("cases", f"none of the {len(cases)} case(s) has a label; the fingerprint needs labelled cases")

    first = labelled[0]["images"]
    if channel_modalities is None:
        channel_modalities = [modality] * len(first)
    if isinstance(channel_modalities, str) or not isinstance(channel_modalities, Sequence):
        raise InputError("channel_modalities", f"expected a list of modalities, got {channel_modalities!r}")
    channel_modalities = [normalise_modality(m, where="channel_modalities") for m in channel_modalities]
    ct = [m == "CT" for m in channel_modalities]
    by_value = {v: k for k, v in labels.items()}
    n_channels = None
    records, samples, per_case, class_voxels, voxel_mm3 = [], [], [], [], []
    for i, case in enumerate(labelled):
        result = _analyse_case(case, by_value, n_channels, ct, int(samples_per_case), int(seed))
        n_channels = len(result["samples"])
        records.append(result["case"])
        samples.append(result["samples"])
        per_case.append(result["per_case"])
        class_voxels.append(result["class_voxels"])
        voxel_mm3.append(result["voxel_mm3"])
        if progress is not None:
            progress(i + 1, len(labelled))

    channels = []
    for c in range(n_channels):
        pool = np.concatenate([s[c] for s in samples]).astype(np.float32, copy=False)
        non_ct = sum(1 for k in range(c) if not ct[k])  # index of channel c among the non-CT ones
        channels.append({"foreground": _foreground_stats(pool),
                         "per_case": None if ct[c] else [p[non_ct] for p in per_case]})
    extra = {}
    if sum(ct) > 1:
        # CT phases share Hounsfield units: one clip/z-score over all of them keeps the
        # enhancement between phases (planner.make_plan uses these for every CT channel)
        pooled = np.concatenate([s[c] for s in samples for c in range(n_channels) if ct[c]])
        extra["ct_foreground"] = _foreground_stats(pooled.astype(np.float32, copy=False))

    classes = {}
    for value, name in sorted(by_value.items()):
        if value == 0:
            continue
        present = [(cv[value], mm3) for cv, mm3 in zip(class_voxels, voxel_mm3) if cv.get(value, 0) > 0]
        classes[name] = {"value": value, "cases_present": len(present),
                         "voxels": _summary([n for n, _ in present]),
                         "mm3": _summary([n * mm3 for n, mm3 in present])}

    return {"version": FINGERPRINT_VERSION, "modality": modality, "channel_modalities": channel_modalities,
            "n_cases": len(records), "labels": labels, "samples_per_case": int(samples_per_case), "seed": int(seed),
            "cases": records, "channels": channels, "classes": classes, **extra}
