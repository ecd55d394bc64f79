"""Plain layout: ``images/`` and ``labels/`` matched by case name (the file name without its
image suffix), optional ``imagesTs/``, ``labels.json`` and ``split.json``.

Channel names stay ``"unknown"`` until ``validate.validate_dataset`` guesses the modality from
the intensities (or ``modality.apply_modality`` sets it), unless the ``--channels`` names are given
(``read_plain(root, channels=["CT", "PET"])``): then every case must have exactly the files
``CASE_0000``.. ``CASE_000k`` they name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..io.atomic import read_json
from .dataset_spec import Case, DatasetSpec
from .layout_common import (case_name, common_ending, group_channels, image_files, need_dir, pair_cases, parse_labels,
                            split_channel)
from .modality import apply_channels

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
                  n_channels: int = 1, declared: Optional[str] = None) -> tuple:
    """``({case: [channel paths]}, n_channels, channel_mode)`` for a plain images folder.

    ``CASE_000k`` names are read as channels only if every image has such a suffix and no image
    name equals a label name (``patient_0001`` may well be a case name of its own). ``declared``
    (the ``--channels`` text) fixes ``n_channels`` instead of the highest suffix found: more than
    one channel then needs the suffixes; one channel accepts either naming.
    """
    parsed = [split_channel(p) for p in files]
    if channel_mode is None:
        channel_mode = bool(files) and all(parsed) and not ({case_name(p) for p in files} & label_ids)
        found = max(s[1] for s in parsed) + 1 if channel_mode else 1
        if declared is None:
            n_channels = found
        elif n_channels > 1 or found > 1:
            # group_channels then names the first file that does not fit the declared channels
            channel_mode = True
    if channel_mode:
        declared = declared or f"the cases in images/ have {n_channels} channel(s)"
        return group_channels(folder, files, n_channels, declared), n_channels, True
    return {cid: [p] for cid, p in _by_name(files).items()}, 1, False


def read_plain(root: Path, channels: Optional[list] = None) -> DatasetSpec:
    """The ``DatasetSpec`` of an ``images/`` + ``labels/`` folder.

    Args:
        root: the dataset folder.
        channels: ``modality.parse_channels`` names (``["CT", "PET"]``) or ``None``: channel
            names ``"unknown"``, the channel count read from the ``_000k`` suffixes.

    Raises:
        InputError: missing or empty folders, unpaired files, two files for one case, bad
            ``labels.json`` or ``split.json``, a case whose files do not match ``channels``
            (a missing ``CASE_000k``, an undeclared one, a name without the suffix), naming the file.
    """
    why = "a plain dataset needs images/ and labels/ side by side"
    images_dir, labels_dir = need_dir(root / "images", why), need_dir(root / "labels", why)
    image_list, label_list = image_files(images_dir), image_files(labels_dir)
    if not image_list:
        raise InputError(images_dir, "holds no image files")
    label_map = _by_name(label_list)
    declared = None if channels is None else f"--channels {','.join(channels)} names {len(channels)} channel(s)"
    want = 1 if channels is None else len(channels)
    images, n, channel_mode = _plain_images(images_dir, image_list, set(label_map), None, want, declared)
    cases = pair_cases(images, label_map, lambda c: f"labels/{c}<suffix>", lambda c: f"images/{c}<suffix>")
    test_only = []
    if (root / "imagesTs").is_dir():
        ts = root / "imagesTs"
        ts_images = _plain_images(ts, image_files(ts), set(), channel_mode, n, declared)[0]
        test_only = [Case(c, imgs) for c, imgs in sorted(ts_images.items())]
    labels = {}
    if (root / "labels.json").is_file():
        labels = parse_labels(read_json(root / "labels.json"), root / "labels.json")
    given = None
    if (root / "split.json").is_file():
        given = _parse_split_file(root / "split.json")
    channel_names = {str(i): "unknown" for i in range(n)}
    spec = DatasetSpec(root, "plain", root.name, channel_names, labels, common_ending(image_list), cases,
                       test_only, "MR", given)
    if channels is not None:
        apply_channels(spec, channels)
    return spec


def _parse_split_file(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise InputError(path, "expected an object {\"train\": [case ids], \"test\": [case ids]}")
    for key in ("train", "test"):
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(path, f"{key} must be a list of case ids (strings), got {value!r}")
    return {"train": list(data["train"]), "test": list(data["test"]), "source": str(path)}
