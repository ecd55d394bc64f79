"""Open every file of a dataset and refuse what training would choke on later.

``validate_dataset`` runs in two passes so that cheap problems surface in seconds: first the
headers of all files (dimension, size, grid of channels and labels), then the voxels, one case
at a time (corrupt data, NaN/Inf, label values). Hard problems raise ``InputError`` naming the
file (or the dataset folder when every label map is empty); soft ones (one empty label map, a
declared label that never occurs) come back as warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from .dataset_spec import DatasetSpec
from .layout_common import check_label_values
from .modality import modality_from_channels
from .imageio import ImageHeader, read_header, read_image

__all__ = ["validate_dataset", "DEFAULT_MAX_VOXELS", "MAX_AXIS", "GEOMETRY_TOL", "CT_MIN_THRESHOLD"]

DEFAULT_MAX_VOXELS = 512 ** 3
MAX_AXIS = 4096
# relative spacing difference, direction-cosine difference, and origin difference as a
# fraction of a voxel that still count as "the same grid" (Geometry.matches)
GEOMETRY_TOL = 1e-3
# a plain folder's channel is guessed to be CT when its minimum is at most this (air is -1000 HU)
CT_MIN_THRESHOLD = -500.0

Progress = Callable[[int, int, str], None]


def _size_str(size) -> str:
    return "x".join(str(int(s)) for s in size)


def _check_header(path: Path, header: ImageHeader, max_voxels: int, what: str) -> None:
    size = header.geometry.size
    if header.dimension == 2:
        raise InputError(path, f"2D image of size {_size_str(size)}; MedSeqFT needs 3D volumes")
    if header.dimension == 4:
        raise InputError(path, f"4D image of size {_size_str(size)}; expected a 3D {what} "
                               "(store each channel as its own file: CASE_0000, CASE_0001, ...)")
    if header.dimension != 3:
        raise InputError(path, f"{header.dimension}D image; expected a 3D {what}")
    if header.components != 1:
        raise InputError(path, f"vector image with {header.components} components per voxel "
                               f"({header.pixel_type}); expected a scalar 3D {what}")
    if min(size) < 2:
        raise InputError(path, f"image of size {_size_str(size)} has a single slice; MedSeqFT needs 3D volumes")
    voxels = int(np.prod(size, dtype=np.int64))
    if voxels > max_voxels or max(size) > MAX_AXIS:
        need = voxels * 4 / 1e9
        need_str = f"{need:.1f} GB" if need >= 0.1 else f"{need * 1e3:.3g} MB"
        raise InputError(path, f"image of size {_size_str(size)} ({voxels:,} voxels) exceeds the limit of "
                               f"{max_voxels:,} voxels and {MAX_AXIS} per axis; it would need {need_str} in memory "
                               "as float32 (crop or resample it)")


def _grid_problem(a, b) -> Optional[str]:
    """``None`` if the grids ``a`` and ``b`` coincide within ``GEOMETRY_TOL``, else e.g.
    ``"origin (-5, 3, 7) vs (0, 0, 0) mm"`` (imageio's ``Geometry.matches`` decides)."""
    problem = a.matches(b, GEOMETRY_TOL)
    if problem is None:
        return None
    kind = problem.split(" ", 1)[0]
    if kind not in ("spacing", "origin", "direction", "size"):
        return problem
    unit = " mm" if kind in ("spacing", "origin") else ""

    def fmt(values) -> str:
        return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"

    return f"{kind} {fmt(getattr(a, kind))} vs {fmt(getattr(b, kind))}{unit}"


def _headers(case, max_voxels: int) -> None:
    """Header checks of one case: dimension, size, and that all its files share one grid."""
    first_path = case.images[0]
    first = read_header(first_path)
    _check_header(first_path, first, max_voxels, "image")
    for path in case.images[1:]:
        header = read_header(path)
        _check_header(path, header, max_voxels, "image")
        problem = _grid_problem(first.geometry, header.geometry)
        if problem is not None:
            # PET and MR sequences often come on their own grids; the network needs one voxel grid
            raise InputError(path, f"channel grid differs from {first_path.name} of case {case.id!r}: {problem}; "
                                   "every channel of a case must lie on one grid (resample it, e.g. PET onto the CT, first)")
    if case.label is not None:
        header = read_header(case.label)
        _check_header(case.label, header, max_voxels, "label map")
        if tuple(header.geometry.size) != tuple(first.geometry.size):
            raise InputError(case.label, f"label size {_size_str(header.geometry.size)} differs from image size "
                                         f"{_size_str(first.geometry.size)} of {first_path.name} (case {case.id!r})")
        problem = _grid_problem(first.geometry, header.geometry)
        if problem is not None:
            raise InputError(case.label, f"label grid differs from image {first_path.name} of case {case.id!r}: "
                                         f"{problem} (image vs label)")


def _slabs(arr: np.ndarray, voxels: int = 1 << 24):
    """(Z, Y, X) array in slabs of about ``voxels`` voxels, so checks on a 512^3 volume never
    allocate more than a slab's worth of temporaries."""
    step = max(1, voxels // max(1, arr[0].size))
    for z in range(0, arr.shape[0], step):
        yield arr[z:z + step]


def _voxels(path: Path):
    """``(image, array view)``: the image must outlive the view, which shares its buffer."""
    import SimpleITK as sitk

    img = read_image(path)
    return img, sitk.GetArrayViewFromImage(img)


def _label_values(path: Path) -> np.ndarray:
    """Sorted distinct values of a label map, checked to be non-negative integers."""
    img, arr = _voxels(path)
    if arr.dtype.kind not in "iuf":
        raise InputError(path, f"label map has pixel type {arr.dtype}; expected integers")
    counts = np.zeros(1, dtype=np.int64)
    for slab in _slabs(arr):
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(slab)
            if bad.any():
                raise InputError(path, "label map contains NaN/Inf voxel(s)")
            fractional = slab != np.round(slab)
            if fractional.any():
                example = float(slab[fractional].flat[0])
                raise InputError(path, f"non-integer label values (e.g. {example:g}); "
                                       "a label map holds class numbers 0, 1, 2, ...")
        lo = slab.min()
        if lo < 0:
            raise InputError(path, f"negative label value {lo:g}; a label map holds class numbers 0, 1, 2, ...")
        if slab.max() > 65535:
            raise InputError(path, f"label value {slab.max():g} is implausibly large for a class number")
        part = np.bincount(slab.ravel().astype(np.int64), minlength=1)
        if part.size > counts.size:
            part[: counts.size] += counts
            counts = part
        else:
            counts[: part.size] += part
    del arr, img
    return np.flatnonzero(counts)


def _nifti_nonfinite(path: Path) -> int:
    """NaN/Inf voxels of a floating-point NIfTI file, counted from the file's own bytes.

    SimpleITK's NIfTI reader silently turns NaN/Inf into 0 (checked with SimpleITK 2.5), so
    those files are scanned with nibabel, slab by slab along the last axis.
    """
    try:
        import nibabel as nib
    except ImportError:  # optional: without nibabel the SimpleITK check below still runs
        return 0
    try:
        img = nib.load(str(path))
    except Exception:  # nibabel refuses some files SimpleITK reads: the main read reports problems
        return 0
    if np.dtype(img.get_data_dtype()).kind != "f" and img.dataobj.slope in (1.0, None):
        return 0
    proxy = img.dataobj
    shape = img.shape
    if len(shape) < 3:
        return 0
    step = max(1, (1 << 24) // max(1, int(np.prod(shape[:2]))))
    bad = 0
    for z in range(0, shape[2], step):
        slab = np.asarray(proxy[:, :, z:z + step])
        bad += int(slab.size - np.count_nonzero(np.isfinite(slab)))
    return bad


def _image_min(path: Path) -> float:
    """Minimum of an image, after checking it has no NaN/Inf voxels."""
    img, arr = _voxels(path)  # first: reports corrupt or truncated files
    if path.name.lower().endswith((".nii", ".nii.gz")):
        bad = _nifti_nonfinite(path)
        if bad:
            raise InputError(path, f"image contains {bad:,} NaN/Inf voxel(s)")
    lo, bad = np.inf, 0
    for slab in _slabs(arr):
        if arr.dtype.kind == "f":
            finite = np.isfinite(slab)
            bad += int(finite.size - np.count_nonzero(finite))
            if finite.any():
                lo = min(lo, float(slab[finite].min()) if bad else float(slab.min()))
        else:
            lo = min(lo, float(slab.min()))
    del arr, img
    if bad:
        raise InputError(path, f"image contains {bad:,} NaN/Inf voxel(s)")
    return lo


def _format_declared(labels: dict) -> str:
    return ", ".join(f"{v}={n}" for n, v in sorted(labels.items(), key=lambda kv: kv[1]))


def validate_dataset(spec: DatasetSpec, max_voxels: int = DEFAULT_MAX_VOXELS,
                     progress: Optional[Progress] = None) -> list:
    """Read every file of ``spec`` and check it (headers of all cases first, then voxels).

    For a plain folder this also fills ``spec.labels`` (from ``labels.json``, else
    ``label_1``.. from the values found) and, unless ``modality.apply_modality`` set them
    already, guesses ``spec.modality``/``channel_names`` from the intensities (channel
    minimum <= -500: CT, else MR), adding a warning that says so.

    Args:
        spec: from ``read_dataset``; modified in place for plain folders as described.
        max_voxels: largest accepted volume (voxels per file).
        progress: ``progress(step, total, message)`` after each case of each pass
            (``total`` = 2 x number of cases, training and test-only).

    Returns:
        All warnings: ``spec.warnings`` (found while reading) followed by the new ones.

    Raises:
        InputError: unreadable/corrupt/truncated file, 2D/4D/vector image, single slice, too
            large, channel or label grid different from the first channel, NaN/Inf voxels,
            non-integer/negative label values, values not declared in the labels, label values
            of a plain folder that are not 0..N-1, every label map empty (only background).
    """
    if int(max_voxels) < 1:
        raise InputError("max_voxels", f"must be >= 1, got {max_voxels}")
    all_cases = list(spec.cases) + list(spec.test_only)
    total = 2 * len(all_cases)
    step = 0

    def tick(message: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total, message)

    for case in all_cases:
        _headers(case, int(max_voxels))
        tick(f"header {case.id}")

    warnings = list(spec.warnings)
    declared = set(spec.labels.values())
    seen: dict = {}  # label value -> first case holding it
    minima = [np.inf] * max(1, spec.num_channels)
    labelled_left = sum(1 for c in all_cases if c.label is not None)
    for case in all_cases:
        for k, path in enumerate(case.images):
            minima[k] = min(minima[k], _image_min(path))
        if case.label is not None:
            values = _label_values(case.label)
            if spec.labels:
                undeclared = sorted(set(int(v) for v in values) - declared)
                if undeclared:
                    source = "labels.json" if spec.format == "plain" else "dataset.json labels"
                    raise InputError(case.label, f"label value(s) {undeclared} not declared in {source} "
                                                 f"({_format_declared(spec.labels)})")
            for v in values:
                seen.setdefault(int(v), case.id)
            if not np.any(values > 0):
                warnings.append(f"case {case.id}: label map is empty (only background) in {case.label}")
            labelled_left -= 1
            if labelled_left == 0 and not any(v > 0 for v in seen):
                # before the last tick, so that a console reporter prints no finished bar first
                raise InputError(spec.root, f"every label map is empty (only background 0 in all {len(spec.cases)} "
                                            "labelled case(s)); there is nothing to train on (wrong labels folder?)")
        tick(f"voxels {case.id}")

    if spec.format == "plain":
        _fill_plain(spec, seen, minima, warnings)
    for name, value in sorted(spec.labels.items(), key=lambda kv: kv[1]):
        if value != 0 and value not in seen:
            warnings.append(f"label {name!r} ({value}) does not occur in any training case")
    return warnings


def _fill_plain(spec: DatasetSpec, seen: dict, minima: list, warnings: list) -> None:
    """Labels and modality of a plain folder, which has no dataset.json to say them."""
    if not spec.labels:
        values = sorted(set(seen) | {0})
        if values != list(range(len(values))):
            first_case = spec.cases[0].label.parent if spec.cases else spec.root
            raise InputError(first_case, f"label values {values} are not consecutive 0..N-1; relabel the maps "
                                         "or add labels.json naming every value")
        spec.labels = check_label_values({"background" if v == 0 else f"label_{v}": v for v in values},
                                         spec.root / "labels")
        warnings.append(f"{spec.root}: no labels.json; label names inferred from the values found: "
                        f"{_format_declared(spec.labels)}")
    guessed = {str(k): ("CT" if m <= CT_MIN_THRESHOLD else "MR") for k, m in enumerate(minima[: spec.num_channels])}
    if all(v == "unknown" for v in spec.channel_names.values()):
        spec.channel_names = guessed
        spec.modality = modality_from_channels(guessed)
        lows = ", ".join(f"{m:g}" for m in minima[: spec.num_channels])
        if spec.num_channels == 1:
            warnings.append(f"{spec.root}: modality guessed as {spec.modality} from the lowest intensity "
                            f"({lows}; CT if <= {CT_MIN_THRESHOLD:g}); pass --modality to set it")
        else:
            warnings.append(f"{spec.root}: channel modalities guessed as {','.join(guessed.values())} from the lowest "
                            f"intensity per channel ({lows}; CT if <= {CT_MIN_THRESHOLD:g}); pass --channels "
                            "(e.g. --channels CT,PET) to set them")
