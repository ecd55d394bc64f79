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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..io.atomic import read_json
from .imageio import SUPPORTED_SUFFIXES, image_suffix

__all__ = ["Case", "DatasetSpec", "FORMATS", "read_dataset", "modality_from_channels"]

FORMATS = ("nnunet", "msd", "plain")
_CHANNEL_RE = re.compile(r"^(.+)_(\d{4})$")
_SUPPORTED = ", ".join(SUPPORTED_SUFFIXES)
# files that tools and operating systems drop into folders; never part of a dataset
_IGNORED_NAMES = {"Thumbs.db", "desktop.ini"}


@dataclass
class Case:
    """One case: its image channel files (in channel order) and its label map (or ``None``)."""

    id: str
    images: list
    label: Optional[Path] = None

    def to_dict(self) -> dict:
        return {"id": self.id, "images": [str(p) for p in self.images],
                "label": None if self.label is None else str(self.label)}


@dataclass
class DatasetSpec:
    """What ``read_dataset`` found.

    Attributes:
        root: the dataset folder (absolute).
        format: ``"nnunet"``, ``"msd"`` or ``"plain"``.
        name: dataset name (``dataset.json`` ``name`` or the folder name).
        channel_names: ``{"0": "CT", ...}``; plain folders start as ``"unknown"`` until
            ``validate_dataset`` guesses the modality from intensities.
        labels: ``{name: value}`` with background 0 and values 0..N-1; empty for a plain folder
            without ``labels.json`` until ``validate_dataset`` fills it from the label maps.
        file_ending: image suffix shared by all files (``""`` for a plain folder mixing formats).
        cases: labelled training cases, sorted by id.
        test_only: unlabelled cases (``imagesTs/``, MSD ``test``), sorted by id.
        modality: ``"CT"`` if every channel is named CT, else ``"MR"`` (z-score normalisation).
        given_split: the dataset's own train/test split (plain ``split.json``), else ``None``.
        warnings: problems noticed while reading that do not stop the import.
    """

    root: Path
    format: str
    name: str
    channel_names: dict
    labels: dict
    file_ending: str
    cases: list
    test_only: list = field(default_factory=list)
    modality: str = "MR"
    given_split: Optional[dict] = None
    warnings: list = field(default_factory=list)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def case_ids(self) -> list:
        return [c.id for c in self.cases]

    def to_dict(self) -> dict:
        """The parts of the spec that ``task.json`` stores (see docs/CONTRACTS.md)."""
        return {"source": {"path": str(self.root), "format": self.format}, "name": self.name,
                "modality": self.modality, "channel_names": dict(self.channel_names),
                "labels": dict(self.labels), "file_ending": self.file_ending,
                "cases": [c.to_dict() for c in self.cases],
                "test_only": [c.to_dict() for c in self.test_only]}


def modality_from_channels(channel_names: dict) -> str:
    """``"CT"`` if every channel is called CT (nnU-Net's CT normalisation), else ``"MR"``."""
    names = [str(v).strip().upper() for v in channel_names.values()]
    return "CT" if names and all(n == "CT" for n in names) else "MR"


def read_dataset(path: str | Path) -> DatasetSpec:
    """Detect the layout of a dataset folder and list its cases (no voxels are read).

    Args:
        path: the dataset folder.

    Returns:
        A ``DatasetSpec`` with at least one labelled case.

    Raises:
        InputError: missing/unreadable/empty folder, unknown layout, malformed or inconsistent
            ``dataset.json``, image without label or label without image, missing channel
            file, unsupported file format. The message names the file.
    """
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise InputError(root, "dataset folder not found")
    if not root.is_dir():
        raise InputError(root, "not a folder; give the dataset folder (the one holding dataset.json, or images/ and labels/)")
    entries = [p for p in _list(root) if not _ignored(p)]
    if not entries:
        raise InputError(root, "dataset folder is empty")
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            raise InputError(meta_path, f"expected a JSON object, got {type(meta).__name__}")
        if "channel_names" in meta or "file_ending" in meta:
            return _read_nnunet(root, meta_path, meta)
        if "training" in meta or "modality" in meta:
            return _read_msd(root, meta_path, meta)
        raise InputError(meta_path, "neither an nnU-Net v2 dataset.json (needs channel_names, labels, file_ending) "
                                    "nor an MSD one (needs modality, labels, training)")
    if (root / "images").is_dir() or (root / "labels").is_dir():
        return _read_plain(root)
    if (root / "imagesTr").is_dir() or (root / "labelsTr").is_dir():
        raise InputError(meta_path, "file not found; an nnU-Net v2 or MSD folder (imagesTr/, labelsTr/) needs its dataset.json")
    raise InputError(root, "no recognisable dataset layout: expected dataset.json with imagesTr/ and labelsTr/ "
                           f"(nnU-Net v2 or MSD) or images/ and labels/ (plain folder){_layout_hint(root, entries)}")


def _layout_hint(root: Path, entries: list) -> str:
    if root.name in ("imagesTr", "labelsTr", "imagesTs", "images", "labels"):
        return f"; this looks like the {root.name}/ subfolder, give its parent {root.parent}"
    nested = sorted(p.name for p in entries if p.is_dir() and ((p / "dataset.json").is_file() or (p / "images").is_dir()))
    if nested:
        return f"; subfolder(s) {nested[:5]} look like datasets, give one of them"
    return ""


# ---------------------------------------------------------------------------- shared helpers


def _list(folder: Path) -> list:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None


def _ignored(p: Path) -> bool:
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
    for p in _list(folder):
        if _ignored(p):
            continue
        if _detached_data(p):
            continue
        if p.is_dir():
            raise InputError(p, f"unexpected subfolder in {folder.name}/; it should hold image files only")
        suffix = image_suffix(p)
        if suffix is None:
            raise InputError(p, f"unsupported file format; expected one of {_SUPPORTED}")
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
        raise InputError(p, f"unsupported file format of {what} in dataset.json; expected one of {_SUPPORTED}")
    if not p.is_file():
        raise InputError(p, f"{what} listed in dataset.json not found")
    return p


def _check_num_training(meta: dict, meta_path: Path, found: int, where: str) -> None:
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


def _common_ending(paths: list) -> str:
    endings = {image_suffix(p) for p in paths}
    return endings.pop() if len(endings) == 1 else ""


def _need_dir(folder: Path, why: str) -> Path:
    if not folder.is_dir():
        raise InputError(folder, f"folder not found; {why}")
    return folder


# ---------------------------------------------------------------------------- nnU-Net v2


def _read_nnunet(root: Path, meta_path: Path, meta: dict) -> DatasetSpec:
    missing = [k for k in ("channel_names", "labels", "file_ending") if k not in meta]
    if missing:
        hint = "; nnU-Net v1 called channel_names 'modality'" if "channel_names" in missing and "modality" in meta else ""
        raise InputError(meta_path, f"nnU-Net v2 dataset.json lacks key(s) {missing}{hint}")
    channel_names = parse_channel_names(meta["channel_names"], meta_path, "channel_names")
    labels = parse_labels(meta["labels"], meta_path)
    ending = meta["file_ending"]
    if not isinstance(ending, str) or ending.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(meta_path, f"file_ending {ending!r} is not supported; expected one of {_SUPPORTED}")
    ending = ending.lower()
    n = len(channel_names)
    declared = f"dataset.json channel_names declares {n} channel(s)"
    if "dataset" in meta:
        cases = _explicit_nnunet_cases(root, meta_path, meta["dataset"], n)
        where = "in dataset.json 'dataset'"
    else:
        images_dir = _need_dir(root / "imagesTr", "nnU-Net v2 needs imagesTr/ and labelsTr/ next to dataset.json")
        labels_dir = _need_dir(root / "labelsTr", "nnU-Net v2 needs imagesTr/ and labelsTr/ next to dataset.json")
        images = group_channels(images_dir, image_files(images_dir, ending), n, declared)
        label_files = {case_name(p): p for p in image_files(labels_dir, ending)}
        if not images and not label_files:
            raise InputError(images_dir, "holds no training images")
        cases = pair_cases(images, label_files, lambda c: f"labelsTr/{c}{ending}", lambda c: f"imagesTr/{c}_0000{ending}")
        where = "in imagesTr/ and labelsTr/"
    _check_num_training(meta, meta_path, len(cases), where)
    test_only = []
    if (root / "imagesTs").is_dir():
        ts = root / "imagesTs"
        test_only = [Case(c, imgs) for c, imgs in group_channels(ts, image_files(ts, ending), n, declared).items()]
    name = meta.get("name") if isinstance(meta.get("name"), str) and meta.get("name").strip() else root.name
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


# ---------------------------------------------------------------------------- MSD


def _read_msd(root: Path, meta_path: Path, meta: dict) -> DatasetSpec:
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
    _check_num_training(meta, meta_path, len(cases), "in dataset.json training")
    test_list = meta.get("test") or []
    if not isinstance(test_list, list):
        raise InputError(meta_path, f"test must be a list of image paths, got {type(test_list).__name__}")
    test_only = []
    for i, entry in enumerate(test_list):
        value = entry.get("image") if isinstance(entry, dict) else entry
        image = resolve_listed(root, value, meta_path, f"test[{i}] image")
        test_only.append(Case(case_name(image), [image]))
    warnings = _unlisted(root, cases)
    name = meta.get("name") if isinstance(meta.get("name"), str) and meta.get("name").strip() else root.name
    return DatasetSpec(root, "msd", name, channel_names, labels, _common_ending([c.images[0] for c in cases]),
                       sorted(cases, key=lambda c: c.id), sorted(test_only, key=lambda c: c.id),
                       modality_from_channels(channel_names), warnings=warnings)


def _unlisted(root: Path, cases: list) -> list:
    listed = {p.resolve() for c in cases for p in [*c.images, c.label]}
    warnings = []
    for sub in ("imagesTr", "labelsTr"):
        folder = root / sub
        if not folder.is_dir():
            continue
        extra = [p for p in _list(folder) if not _ignored(p) and image_suffix(p) and p.resolve() not in listed]
        if extra:
            warnings.append(f"{folder}: {len(extra)} file(s) not listed in dataset.json training were ignored "
                            f"(first: {extra[0].name})")
    return warnings


# ---------------------------------------------------------------------------- plain folder


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


def _read_plain(root: Path) -> DatasetSpec:
    why = "a plain dataset needs images/ and labels/ side by side"
    images_dir, labels_dir = _need_dir(root / "images", why), _need_dir(root / "labels", why)
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
    return DatasetSpec(root, "plain", root.name, channel_names, labels, _common_ending(image_list), cases,
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
