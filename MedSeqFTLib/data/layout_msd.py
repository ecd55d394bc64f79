"""Medical Segmentation Decathlon layout: ``dataset.json`` with ``modality``, ``labels``
(index -> name) and a ``training`` list pairing images with labels; ``test`` lists unlabelled
images. 4D multi-modal tasks are refused (convert them to nnU-Net v2 first).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .dataset_spec import Case, DatasetSpec
from .imageio import image_suffix
from .layout_common import (case_name, check_num_training, common_ending, dataset_name, ignored, list_folder,
                            parse_channel_names, parse_labels, resolve_listed)
from .modality import modality_from_channels

__all__ = ["read_msd"]


def read_msd(root: Path, meta_path: Path, meta: dict) -> DatasetSpec:
    """The ``DatasetSpec`` of a Decathlon task whose ``dataset.json`` (``meta``) is read already.

    Raises:
        InputError: missing keys, 4D multi-modal task, bad labels, listed file missing, repeated
            case, numTraining mismatch (names the file).
    """
    missing = [k for k in ("modality", "labels", "training") if k not in meta]
    if missing:
        raise InputError(meta_path, f"MSD dataset.json lacks key(s) {missing}")
    channel_names = parse_channel_names(meta["modality"], meta_path, "modality")
    if len(channel_names) > 1 or str(meta.get("tensorImageSize", "3D")).upper() == "4D":
        raise InputError(meta_path, f"4D multi-modal MSD images ({len(channel_names)} modalities "
                                    f"{list(channel_names.values())}) are not supported; convert the task with "
                                    "nnUNetv2_convert_MSD_dataset (one file per channel) and add the converted folder")
    labels = parse_labels(meta["labels"], meta_path)
    training = meta["training"]
    if not isinstance(training, list) or not training:
        raise InputError(meta_path, "training must be a non-empty list of {\"image\": ..., \"label\": ...}")
    cases, seen = [], {}
    for i, entry in enumerate(training):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise InputError(meta_path, f"training[{i}] needs 'image' and 'label' paths, got {entry!r}")
        image = resolve_listed(root, entry["image"], meta_path, f"training[{i}] image")
        label = resolve_listed(root, entry["label"], meta_path, f"training[{i}] label")
        cid = case_name(image)
        if cid in seen:
            raise InputError(meta_path, f"training[{i}] repeats case {cid!r} (also training[{seen[cid]}])")
        seen[cid] = i
        cases.append(Case(cid, [image], label))
    check_num_training(meta, meta_path, len(cases), "in dataset.json training")
    test_list = meta.get("test") or []
    if not isinstance(test_list, list):
        raise InputError(meta_path, f"test must be a list of image paths, got {type(test_list).__name__}")
    test_only = []
    for i, entry in enumerate(test_list):
        value = entry.get("image") if isinstance(entry, dict) else entry
        image = resolve_listed(root, value, meta_path, f"test[{i}] image")
        test_only.append(Case(case_name(image), [image]))
    warnings = _unlisted(root, cases)
    name = dataset_name(meta, root)
    return DatasetSpec(root, "msd", name, channel_names, labels, common_ending([c.images[0] for c in cases]),
                       sorted(cases, key=lambda c: c.id), sorted(test_only, key=lambda c: c.id),
                       modality_from_channels(channel_names), warnings=warnings)


def _unlisted(root: Path, cases: list) -> list:
    listed = {p.resolve() for c in cases for p in [*c.images, c.label]}
    warnings = []
    for sub in ("imagesTr", "labelsTr"):
        folder = root / sub
        if not folder.is_dir():
            continue
        extra = [p for p in list_folder(folder) if not ignored(p) and image_suffix(p) and p.resolve() not in listed]
        if extra:
            warnings.append(f"{folder}: {len(extra)} file(s) not listed in dataset.json training were ignored "
                            f"(first: {extra[0].name})")
    return warnings
