"""Helpers shared by the layout readers: listing image folders, case names and channels,
pairing images with labels, and parsing the label and channel tables of the JSON files.

Every problem raises ``InputError`` naming the offending file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..errors import InputError
from .dataset_spec import Case
from .imageio import SUPPORTED_SUFFIXES, image_suffix

__all__ = ["SUPPORTED_TEXT", "list_folder", "ignored", "image_files", "case_name", "split_channel",
           "group_channels", "pair_cases", "parse_channel_names", "check_label_values", "parse_labels",
           "resolve_listed", "check_num_training", "common_ending", "need_dir", "dataset_name"]

SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)
_CHANNEL_RE = re.compile(r"^(.+)_(\d{4})$")
# files that tools and operating systems drop into folders; never part of a dataset
_IGNORED_NAMES = {"Thumbs.db", "desktop.ini"}


def list_folder(folder: Path) -> list:
    """Entries of ``folder``, sorted. Raises ``InputError`` if it cannot be listed."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None


def ignored(p: Path) -> bool:
    """True for files that are never part of a dataset (hidden files, ``Thumbs.db``, ...)."""
    # hidden files include macOS "._name" AppleDouble files, which the MSD archives contain
    return p.name.startswith(".") or p.name in _IGNORED_NAMES


def _detached_data(p: Path) -> bool:
    # the voxel file of a .mhd/.nhdr header (case.raw next to case.mhd) is not an image of its own
    name = p.name
    for data_suffix in (".raw.gz", ".zraw", ".raw", ".img.gz", ".img"):
        if name.lower().endswith(data_suffix):
            base = name[: len(name) - len(data_suffix)]
            return any((p.parent / (base + h)).is_file() for h in (".mhd", ".nhdr", ".MHD", ".NHDR"))
    return False


def image_files(folder: Path, file_ending: Optional[str] = None) -> list:
    """Image files of ``folder`` (sorted), refusing anything that is not one.

    Raises:
        InputError: a subfolder, a file with an unsupported format, or (when ``file_ending``
            is given) a file with another ending than the dataset's.
    """
    files = []
    for p in list_folder(folder):
        if ignored(p):
            continue
        if _detached_data(p):
            continue
        if p.is_dir():
            raise InputError(p, f"unexpected subfolder in {folder.name}/; it should hold image files only")
        suffix = image_suffix(p)
        if suffix is None:
            raise InputError(p, f"unsupported file format; expected one of {SUPPORTED_TEXT}")
        if file_ending is not None and suffix != file_ending.lower():
            raise InputError(p, f"file ending {suffix!r} differs from the dataset's file_ending {file_ending!r}")
        files.append(p)
    return files


def case_name(p: Path) -> str:
    """File name without its image suffix (``liver_3.nii.gz`` -> ``liver_3``)."""
    suffix = image_suffix(p) or ""
    return p.name[: len(p.name) - len(suffix)]


def split_channel(p: Path) -> Optional[tuple]:
    """``("case", 1)`` for ``case_0001<ending>``, ``None`` without a 4-digit channel suffix."""
    m = _CHANNEL_RE.match(case_name(p))
    return (m.group(1), int(m.group(2))) if m else None


def group_channels(folder: Path, files: list, n_channels: int, declared: str) -> dict:
    """Group ``CASE_000k`` files into ``{case: [channel 0 path, channel 1 path, ...]}``.

    Args:
        folder: the folder the files came from (used to name a missing channel file).
        files: image files, all with the same suffix.
        n_channels: channels each case must have.
        declared: where ``n_channels`` comes from, for messages (``"channel_names declares 2 channel(s)"``).

    Raises:
        InputError: a file without channel suffix, an undeclared channel, a missing channel.
    """
    grouped: dict = {}
    suffixes: dict = {}
    for p in files:
        parsed = split_channel(p)
        if parsed is None:
            raise InputError(p, "image file name lacks the 4-digit channel suffix; "
                                f"name images CASE_0000{image_suffix(p)}, CASE_0001{image_suffix(p)}, ... (nnU-Net v2)")
        case, channel = parsed
        if channel >= n_channels:
            raise InputError(p, f"channel {channel:04d} is not declared ({declared})")
        grouped.setdefault(case, {})[channel] = p
        suffixes[case] = image_suffix(p)
    result = {}
    for case in sorted(grouped):
        channels = grouped[case]
        for k in range(n_channels):
            if k not in channels:
                missing = folder / f"{case}_{k:04d}{suffixes[case]}"
                raise InputError(missing, f"missing channel file of case {case!r} ({declared})")
        result[case] = [channels[k] for k in range(n_channels)]
    return result


def pair_cases(images: dict, labels: dict, expected_label, expected_image) -> list:
    """Match ``{case: [channel paths]}`` with ``{case: label path}`` into sorted ``Case`` objects.

    Args:
        expected_label / expected_image: ``case -> str`` naming the file that would be missing.

    Raises:
        InputError: an image without label or a label without image (names the case and file).
    """
    only_images = sorted(set(images) - set(labels))
    if only_images:
        case = only_images[0]
        more = f" ({len(only_images)} cases lack a label)" if len(only_images) > 1 else ""
        raise InputError(images[case][0], f"image without label: case {case!r} has no {expected_label(case)}{more}")
    only_labels = sorted(set(labels) - set(images))
    if only_labels:
        case = only_labels[0]
        more = f" ({len(only_labels)} labels lack an image)" if len(only_labels) > 1 else ""
        raise InputError(labels[case], f"label without image: case {case!r} has no {expected_image(case)}{more}")
    return [Case(case, list(images[case]), labels[case]) for case in sorted(images)]


def parse_channel_names(value, where: Path, key: str) -> dict:
    """Check ``{"0": "CT", "1": "T2"}``: keys 0..k-1, non-empty string names.

    Raises:
        InputError: not an object, empty, non-numeric or non-consecutive keys, empty names.
    """
    if not isinstance(value, dict) or not value:
        raise InputError(where, f"{key} must be a non-empty object like {{\"0\": \"CT\"}}, got {value!r}")
    try:
        indices = sorted(int(k) for k in value)
    except (TypeError, ValueError):
        raise InputError(where, f"{key} keys must be channel numbers \"0\", \"1\", ..., got {sorted(value)}") from None
    if indices != list(range(len(indices))):
        raise InputError(where, f"{key} keys must be consecutive channel numbers starting at 0, got {indices}")
    for k, name in value.items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(where, f"{key}[{k!r}] must be a non-empty name, got {name!r}")
    return {str(i): str(value[k]).strip() for i, k in sorted((int(k), k) for k in value)}


def check_label_values(labels: dict, where: Path) -> dict:
    """Check a ``{name: value}`` mapping: background 0, unique values 0..N-1.

    Raises:
        InputError: missing background 0, duplicate values, gaps, negative or non-integer values.
    """
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            raise InputError(where, f"label {name!r} is a region (list {value}); region-based labels are not supported")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(where, f"label {name!r} must have an integer value, got {value!r}")
        if value < 0:
            raise InputError(where, f"label {name!r} has a negative value {value}")
    values = sorted(labels.values())
    if 0 not in values:
        raise InputError(where, f"labels must start with background 0, got values {values}")
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        names = sorted(n for n, v in labels.items() if v in dupes)
        raise InputError(where, f"duplicate label value(s) {dupes} for labels {names}")
    if values != list(range(len(values))):
        raise InputError(where, f"label values must be consecutive 0..{len(values) - 1} (as in nnU-Net), got {values}")
    return {str(n): int(v) for n, v in sorted(labels.items(), key=lambda kv: kv[1])}


def parse_labels(value, where: Path) -> dict:
    """Labels as nnU-Net ``{name: value}`` or MSD ``{"value": name}``, returned as ``{name: value}``.

    Raises:
        InputError: not a non-empty object, duplicate names, or any ``check_label_values`` problem.
    """
    if not isinstance(value, dict) or not value:
        raise InputError(where, f"labels must be a non-empty object like {{\"background\": 0, \"liver\": 1}}, got {value!r}")
    index_to_name = all(isinstance(k, str) and k.strip().lstrip("-").isdigit() for k in value) and \
        all(isinstance(v, str) for v in value.values())
    if not index_to_name:
        return check_label_values(value, where)
    names = [str(v).strip() for v in value.values()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(where, f"duplicate label name(s) {dupes}")
    if any(not n for n in names):
        raise InputError(where, "label names must not be empty")
    return check_label_values({str(v).strip(): int(k) for k, v in value.items()}, where)


def resolve_listed(root: Path, value, meta_path: Path, what: str) -> Path:
    """A file named in ``dataset.json`` (relative to the dataset folder, or absolute) that exists.

    Raises:
        InputError: not a string, unsupported format, or missing file.
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError(meta_path, f"{what} must be a file path, got {value!r}")
    p = Path(value)
    p = p if p.is_absolute() else (root / p)
    if image_suffix(p) is None:
        raise InputError(p, f"unsupported file format of {what} in dataset.json; expected one of {SUPPORTED_TEXT}")
    if not p.is_file():
        raise InputError(p, f"{what} listed in dataset.json not found")
    return p


def check_num_training(meta: dict, meta_path: Path, found: int, where: str) -> None:
    """Refuse a ``numTraining`` in ``dataset.json`` that differs from the ``found`` cases."""
    # nnU-Net's own verify_dataset_integrity refuses a mismatch too: it usually means an
    # incomplete copy, which must not turn silently into a smaller training set
    if "numTraining" not in meta:
        return
    value = meta["numTraining"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(meta_path, f"numTraining must be an integer, got {value!r}")
    if value != found:
        raise InputError(meta_path, f"numTraining is {value} but {found} labelled case(s) were found {where} "
                                    "(incomplete copy? fix the files or numTraining)")


def common_ending(paths: list) -> str:
    """The image suffix shared by all ``paths``, or ``""`` when they mix formats."""
    endings = {image_suffix(p) for p in paths}
    return endings.pop() if len(endings) == 1 else ""


def need_dir(folder: Path, why: str) -> Path:
    """``folder`` if it is a folder, else ``InputError`` ("folder not found; <why>")."""
    if not folder.is_dir():
        raise InputError(folder, f"folder not found; {why}")
    return folder


def dataset_name(meta: dict, root: Path) -> str:
    """``dataset.json`` ``name`` when it is a non-empty string, else the folder name."""
    name = meta.get("name")
    return name if isinstance(name, str) and name.strip() else root.name
