"""nnU-Net v2 raw layout: ``dataset.json`` (``channel_names``, ``labels``, ``file_ending``),
``imagesTr/CASE_000k<ending>``, ``labelsTr/CASE<ending>``, optional ``imagesTs/``; or the
explicit ``"dataset"`` entry of ``dataset.json`` that nnU-Net allows instead of the folder scan.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .dataset_spec import Case, DatasetSpec
from .imageio import SUPPORTED_SUFFIXES
from .layout_common import (SUPPORTED_TEXT, case_name, check_num_training, dataset_name, group_channels, image_files,
                            need_dir, pair_cases, parse_channel_names, parse_labels, resolve_listed)
from .modality import modality_from_channels

__all__ = ["read_nnunet"]


def read_nnunet(root: Path, meta_path: Path, meta: dict) -> DatasetSpec:
    """The ``DatasetSpec`` of an nnU-Net v2 raw folder whose ``dataset.json`` (``meta``) is read already.

    Raises:
        InputError: missing keys, bad channel_names/labels/file_ending, unpaired or missing files,
            numTraining mismatch (names the file).
    """
    missing = [k for k in ("channel_names", "labels", "file_ending") if k not in meta]
    if missing:
        hint = "; nnU-Net v1 called channel_names 'modality'" if "channel_names" in missing and "modality" in meta else ""
        raise InputError(meta_path, f"nnU-Net v2 dataset.json lacks key(s) {missing}{hint}")
    channel_names = parse_channel_names(meta["channel_names"], meta_path, "channel_names")
    labels = parse_labels(meta["labels"], meta_path)
    ending = meta["file_ending"]
    if not isinstance(ending, str) or ending.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(meta_path, f"file_ending {ending!r} is not supported; expected one of {SUPPORTED_TEXT}")
    ending = ending.lower()
    n = len(channel_names)
    declared = f"dataset.json channel_names declares {n} channel(s)"
    if "dataset" in meta:
        cases = _explicit_nnunet_cases(root, meta_path, meta["dataset"], n)
        where = "in dataset.json 'dataset'"
    else:
        images_dir = need_dir(root / "imagesTr", "nnU-Net v2 needs imagesTr/ and labelsTr/ next to dataset.json")
        labels_dir = need_dir(root / "labelsTr", "nnU-Net v2 needs imagesTr/ and labelsTr/ next to dataset.json")
        images = group_channels(images_dir, image_files(images_dir, ending), n, declared)
        label_files = {case_name(p): p for p in image_files(labels_dir, ending)}
        if not images and not label_files:
            raise InputError(images_dir, "holds no training images")
        cases = pair_cases(images, label_files, lambda c: f"labelsTr/{c}{ending}", lambda c: f"imagesTr/{c}_0000{ending}")
        where = "in imagesTr/ and labelsTr/"
    check_num_training(meta, meta_path, len(cases), where)
    test_only = []
    if (root / "imagesTs").is_dir():
        ts = root / "imagesTs"
        test_only = [Case(c, imgs) for c, imgs in group_channels(ts, image_files(ts, ending), n, declared).items()]
    name = dataset_name(meta, root)
    return DatasetSpec(root, "nnunet", name, channel_names, labels, ending, cases, test_only,
                       modality_from_channels(channel_names))


def _explicit_nnunet_cases(root: Path, meta_path: Path, entries, n: int) -> list:
    # nnU-Net v2 lets dataset.json list the files itself: {"case": {"images": [...], "label": "..."}}
    if not isinstance(entries, dict) or not entries:
        raise InputError(meta_path, "'dataset' must be a non-empty object {case: {\"images\": [...], \"label\": ...}}")
    cases = []
    for cid in sorted(entries):
        entry = entries[cid]
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), list) or "label" not in entry:
            raise InputError(meta_path, f"dataset[{cid!r}] needs 'images' (a list of {n} path(s)) and 'label'")
        if len(entry["images"]) != n:
            raise InputError(meta_path, f"dataset[{cid!r}] lists {len(entry['images'])} image(s) but channel_names declares {n}")
        images = [resolve_listed(root, v, meta_path, f"dataset[{cid!r}] image") for v in entry["images"]]
        label = resolve_listed(root, entry["label"], meta_path, f"dataset[{cid!r}] label")
        cases.append(Case(str(cid), images, label))
    return cases
