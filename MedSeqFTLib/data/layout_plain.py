"""Plain layout: ``images/`` and ``labels/`` matched by case name (the file name without its
image suffix), optional ``imagesTs/``, ``labels.json`` and ``split.json``.

Channel names stay ``"unknown"`` until ``validate.validate_dataset`` guesses the modality from
the intensities (or ``modality.apply_modality`` sets it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..io.atomic import read_json
from .dataset_spec import Case, DatasetSpec
from .layout_common import (case_name, common_ending, group_channels, image_files, need_dir, pair_cases, parse_labels,
                            split_channel)

__all__ = ["read_plain"]


def _by_name(files: list) -> dict:
    result = {}
    for p in files:
        cid = case_name(p)
        if cid in result:
            raise InputError(p, f"two files for case {cid!r}: {result[cid].name} and {p.name}")
        result[cid] = p
    return result


def _plain_images(folder: Path, files: list, label_ids: set, channel_mode: Optional[bool] = None,
                  n_channels: int = 1) -> tuple:
    """``({case: [channel paths]}, n_channels, channel_mode)`` for a plain images folder.

    ``CASE_000k`` names are read as channels only if every image has such a suffix and no image
    name equals a label name (``patient_0001`` may well be a case name of its own).
    """
    parsed = [split_channel(p) for p in files]
    if channel_mode is None:
        channel_mode = bool(files) and all(parsed) and not ({case_name(p) for p in files} & label_ids)
        n_channels = max(s[1] for s in parsed) + 1 if channel_mode else 1
    if channel_mode:
        return group_channels(folder, files, n_channels, f"the cases in images/ have {n_channels} channel(s)"), n_channels, True
    return {cid: [p] for cid, p in _by_name(files).items()}, 1, False


def read_plain(root: Path) -> DatasetSpec:
    """The ``DatasetSpec`` of an ``images/`` + ``labels/`` folder (channel names ``"unknown"``).

    Raises:
        InputError: missing or empty folders, unpaired files, two files for one case, bad
            ``labels.json`` or ``split.json`` (names the file).
    """
    why = "a plain dataset needs images/ and labels/ side by side"
    images_dir, labels_dir = need_dir(root / "images", why), need_dir(root / "labels", why)
    image_list, label_list = image_files(images_dir), image_files(labels_dir)
    if not image_list:
        raise InputError(images_dir, "holds no image files")
    label_map = _by_name(label_list)
    images, n, channel_mode = _plain_images(images_dir, image_list, set(label_map))
    cases = pair_cases(images, label_map, lambda c: f"labels/{c}<suffix>", lambda c: f"images/{c}<suffix>")
    test_only = []
    if (root / "imagesTs").is_dir():
        ts = root / "imagesTs"
        ts_images = _plain_images(ts, image_files(ts), set(), channel_mode, n)[0]
        test_only = [Case(c, imgs) for c, imgs in sorted(ts_images.items())]
    labels = {}
    if (root / "labels.json").is_file():
        labels = parse_labels(read_json(root / "labels.json"), root / "labels.json")
    given = None
    if (root / "split.json").is_file():
        given = _parse_split_file(root / "split.json")
    channel_names = {str(i): "unknown" for i in range(n)}
    return DatasetSpec(root, "plain", root.name, channel_names, labels, common_ending(image_list), cases,
                       test_only, "MR", given)


def _parse_split_file(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise InputError(path, "expected an object {\"train\": [case ids], \"test\": [case ids]}")
    for key in ("train", "test"):
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(path, f"{key} must be a list of case ids (strings), got {value!r}")
    return {"train": list(data["train"]), "test": list(data["test"]), "source": str(path)}
