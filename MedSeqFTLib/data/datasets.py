"""Find the cases of a segmentation dataset folder: nnU-Net v2 raw, MSD task, or plain folder.

``read_dataset`` only looks at names and JSON files (fast, no voxels); ``validate.validate_dataset``
then opens every file. Three layouts are recognised:

* **nnU-Net v2 raw** (``dataset.json`` with ``channel_names``, ``labels``, ``file_ending``):
  ``imagesTr/CASE_0000<ending>`` .. ``CASE_000k``, ``labelsTr/CASE<ending>``, optional
  ``imagesTs/``; or an explicit ``"dataset"`` entry in ``dataset.json`` as nnU-Net allows.
* **Medical Segmentation Decathlon** (``dataset.json`` with ``training``, ``modality``,
  ``labels`` as index -> name): the ``training`` list pairs images with labels, ``test`` lists
  unlabelled images. 4D multi-modal MSD tasks are refused (convert them to nnU-Net v2 first).
* **plain**: ``images/`` and ``labels/`` matched by case name (the file name without its image
  suffix), optional ``imagesTs/``, ``labels.json`` and ``split.json``.

Every structural problem raises ``InputError`` naming the offending file; see docs/datasets.md.

This module is the public entry point: it picks the layout and re-exports what callers use.
The readers live in ``layout_nnunet``, ``layout_msd`` and ``layout_plain``, their shared helpers
in ``layout_common``, the records in ``dataset_spec`` and the modality rules in ``modality``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from ..io.atomic import read_json
from .dataset_spec import FORMATS, Case, DatasetSpec
from .layout_common import (case_name, check_label_values, group_channels, ignored, image_files, list_folder,
                            pair_cases, parse_channel_names, parse_labels, resolve_listed, split_channel)
from .layout_msd import read_msd
from .layout_nnunet import read_nnunet
from .layout_plain import read_plain
from .modality import apply_channels, modality_from_channels, parse_channels

__all__ = ["Case", "DatasetSpec", "FORMATS", "read_dataset", "modality_from_channels", "parse_channels",
           "check_label_values", "image_files", "case_name", "split_channel", "group_channels", "pair_cases",
           "parse_channel_names", "parse_labels", "resolve_listed"]


def read_dataset(path: str | Path, channels: Optional[Sequence[str]] = None) -> DatasetSpec:
    """Detect the layout of a dataset folder and list its cases (no voxels are read).

    Args:
        path: the dataset folder.
        channels: the ``--channels`` names (``modality.parse_channels("CT,PET")``): a plain folder's
            files ``CASE_0000``, ``CASE_0001``.. are grouped by them and named after them; an
            nnU-Net/MSD folder's ``dataset.json`` channel names must agree (``modality.apply_channels``).

    Returns:
        A ``DatasetSpec`` with at least one labelled case.

    Raises:
        InputError: missing/unreadable/empty folder, unknown layout, malformed or inconsistent
            ``dataset.json``, image without label or label without image, missing channel
            file, unsupported file format, files or ``dataset.json`` that do not match
            ``channels``. The message names the file.
    """
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise InputError(root, "dataset folder not found")
    if not root.is_dir():
        raise InputError(root, "not a folder; give the dataset folder (the one holding dataset.json, or images/ and labels/)")
    entries = [p for p in list_folder(root) if not ignored(p)]
    if not entries:
        raise InputError(root, "dataset folder is empty")
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            raise InputError(meta_path, f"expected a JSON object, got {type(meta).__name__}")
        if "channel_names" in meta or "file_ending" in meta:
            return _with_channels(read_nnunet(root, meta_path, meta), channels)
        if "training" in meta or "modality" in meta:
            return _with_channels(read_msd(root, meta_path, meta), channels)
        raise InputError(meta_path, "neither an nnU-Net v2 dataset.json (needs channel_names, labels, file_ending) "
                                    "nor an MSD one (needs modality, labels, training)")
    if (root / "images").is_dir() or (root / "labels").is_dir():
        return read_plain(root, None if channels is None else list(channels))
    if (root / "imagesTr").is_dir() or (root / "labelsTr").is_dir():
        raise InputError(meta_path, "file not found; an nnU-Net v2 or MSD folder (imagesTr/, labelsTr/) needs its dataset.json")
    raise InputError(root, "no recognisable dataset layout: expected dataset.json with imagesTr/ and labelsTr/ "
                           f"(nnU-Net v2 or MSD) or images/ and labels/ (plain folder){_layout_hint(root, entries)}")


def _with_channels(spec: DatasetSpec, channels: Optional[Sequence[str]]) -> DatasetSpec:
    if channels is not None:
        apply_channels(spec, list(channels))
    return spec


def _layout_hint(root: Path, entries: list) -> str:
    if root.name in ("imagesTr", "labelsTr", "imagesTs", "images", "labels"):
        return f"; this looks like the {root.name}/ subfolder, give its parent {root.parent}"
    nested = sorted(p.name for p in entries if p.is_dir() and ((p / "dataset.json").is_file() or (p / "images").is_dir()))
    if nested:
        return f"; subfolder(s) {nested[:5]} look like datasets, give one of them"
    return ""
