"""The modality of a dataset and of each of its channels (``CT``, ``MR``, ``PET`` or ``other``).

A channel's modality picks its normalisation (``preprocess.channel_schemes``): ``CT`` gets the
CT scheme of the plan (the foundation model's HU window, or nnU-Net's foreground clip + z-score);
every other channel (``PET``, ``MR``, ``other``) a per-image z-score inside the body. nnU-Net and
MSD datasets name their channels in ``dataset.json`` and the name says the modality (``"CT"``,
``"PET"``/``"PT"``, MR sequence names such as ``"T1"``, ``"FLAIR"``); a plain folder does not, so
``validate.validate_dataset`` guesses per channel from intensities unless ``apply_modality``
(``medseqft add-task --modality``) or the ``--channels`` list (``parse_channels``, read by
``datasets.read_dataset``) sets them first.

The task-level ``modality`` (one value, the ``task.json`` field of old) stays as it was: ``CT``
only when every channel is CT. ``channel_modalities`` is the per-channel list next to it.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from ..errors import InputError

__all__ = ["MODALITIES", "modality_from_channels", "normalise_modality", "channel_modality", "apply_modality",
           "channel_modalities", "task_channel_modalities", "parse_channels", "apply_channels"]

MODALITIES = ("CT", "MR", "PET", "other")
# channel names of dataset.json that state an MR image: MR itself and the usual sequence names
_MR_NAMES = {"MR", "MRI", "T1", "T1W", "T1GD", "T1CE", "T1C", "T2", "T2W", "FLAIR", "ADC", "DWI", "PD", "SWI", "HBV"}
# "PT" is the DICOM modality code of PET
_PET_NAMES = {"PET", "PT"}


def modality_from_channels(channel_names: dict) -> str:
    """``"CT"`` if every channel is called CT (nnU-Net's CT normalisation), else ``"MR"``."""
    names = [str(v).strip().upper() for v in channel_names.values()]
    return "CT" if names and all(n == "CT" for n in names) else "MR"


def normalise_modality(value, where: str = "--modality") -> str:
    """``"ct"`` -> ``"CT"``, ``"Other"`` -> ``"other"``: one of ``MODALITIES``, case-insensitive.

    Raises:
        InputError: anything else (e.g. ``"XRAY"``), naming ``where``.
    """
    key = value.strip().upper() if isinstance(value, str) else None
    for modality in MODALITIES:
        if modality.upper() == key:
            return modality
    raise InputError(where, f"unknown modality {value!r}; expected one of {', '.join(MODALITIES)} (case-insensitive)")


def channel_modality(name: str) -> Optional[str]:
    """The modality a channel name states: ``"CT"``, ``"PET"`` (also ``"PT"``), ``"MR"`` (also for
    MR sequence names such as T2, FLAIR, ADC), ``"other"`` for ``"other"``, or ``None`` when the name
    does not say (e.g. nnU-Net's ``"zscore"`` or ``"noNorm"``)."""
    key = str(name).strip().upper()
    if key == "CT":
        return "CT"
    if key in _PET_NAMES:
        return "PET"
    if key == "OTHER":
        return "other"
    return "MR" if key in _MR_NAMES else None


def channel_modalities(channel_names: Mapping, modality: str = "MR") -> list:
    """The modality of each channel, in channel order: what its name states, else ``modality``.

    Args:
        channel_names: ``{"0": "CT", "1": "PET"}`` (keys 0..k-1).
        modality: the task's modality, for channels whose name states none (``"zscore"``, or a plain
            folder's ``"unknown"`` before ``validate_dataset`` guessed it).

    Returns:
        e.g. ``["CT", "PET"]``; each one of ``MODALITIES``.

    Raises:
        InputError: ``modality`` is not one of ``MODALITIES``.
    """
    fallback = normalise_modality(modality, where="modality")
    return [channel_modality(channel_names[k]) or fallback for k in sorted(channel_names, key=int)]


def task_channel_modalities(record: Mapping) -> list:
    """The channel modalities of a ``task.json`` record: its ``channel_modalities`` list when it has
    one, else derived from ``channel_names`` and ``modality`` (records written before the field existed).

    Raises:
        InputError: a ``channel_modalities`` entry that is not a modality, or a list whose length
            differs from ``channel_names``.
    """
    names = record.get("channel_names") or {"0": record.get("modality") or "MR"}
    given = record.get("channel_modalities")
    if given is None:
        return channel_modalities(names, record.get("modality") or "MR")
    if not isinstance(given, (list, tuple)) or len(given) != len(names):
        raise InputError("task.json channel_modalities", f"expected one modality per channel ({len(names)}: "
                                                         f"{dict(names)}), got {given!r}")
    return [normalise_modality(m, where="task.json channel_modalities") for m in given]


def parse_channels(text, where: str = "--channels") -> list:
    """``"CT,PET"`` -> ``["CT", "PET"]``: the channel names of a plain folder, in file order.

    Item k names the files ``CASE_000k<suffix>``. Each item is a name whose modality is known
    (``channel_modality``): CT, PET or PT, MR or an MR sequence (T1, T2, FLAIR, ADC, ...), or
    ``other``. Names are upper-cased (``other`` stays lower-case); repeats are allowed (two CT
    phases: ``CT,CT``).

    Raises:
        InputError: empty text, an empty item or a name of no known modality, naming ``where``.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(where, f"expected a comma list of channel names such as CT,PET, got {text!r}")
    names = []
    for i, item in enumerate(text.split(",")):
        name = item.strip()
        if not name:
            raise InputError(where, f"empty channel name at position {i + 1} of {text!r}")
        modality = channel_modality(name)
        if modality is None:
            raise InputError(where, f"channel {i} name {name!r} states no modality; use CT, PET (or PT), MR or an MR "
                                    f"sequence name ({', '.join(sorted(_MR_NAMES - {'MR'}))}), or other")
        names.append("other" if modality == "other" else name.upper())
    return names


def _task_modality(names: Sequence) -> str:
    """The one task-level modality for channels named ``names``: theirs when they agree, else
    ``modality_from_channels`` (``MR``: the z-score that every non-CT channel gets)."""
    found = {channel_modality(n) for n in names}
    return found.pop() if len(found) == 1 and None not in found else modality_from_channels(dict(enumerate(names)))


def apply_channels(spec, names: Sequence, where: str = "--channels") -> None:
    """Check the ``--channels`` names against ``spec`` (a ``DatasetSpec``) and record them, in place.

    A plain folder takes the names as its ``channel_names`` (``read_dataset(path, channels=...)``
    has grouped its files by them already). An nnU-Net/MSD ``dataset.json`` keeps its own names
    where they state a modality, which must then agree; a name that states none (``"zscore"``) is
    replaced by the given one.

    Raises:
        InputError: another number of channels than the dataset has (naming its ``dataset.json`` or
            first image), or a channel whose ``dataset.json`` name states another modality.
    """
    names = list(names)
    if len(names) != spec.num_channels:
        first = spec.root / "dataset.json" if spec.format != "plain" else (spec.cases[0].images[0] if spec.cases else spec.root)
        raise InputError(first, f"{where} {','.join(names)} names {len(names)} channel(s) but the dataset has "
                                f"{spec.num_channels} ({dict(spec.channel_names)})")
    if spec.format == "plain":
        spec.channel_names = {str(k): n for k, n in enumerate(names)}
        spec.modality = _task_modality(names)
        return
    updated = dict(spec.channel_names)
    for k, given in enumerate(names):
        own = channel_modality(spec.channel_names[str(k)])
        if own is None:
            updated[str(k)] = given
        elif own != channel_modality(given):
            raise InputError(where, f"channel {k} {given!r} contradicts {spec.root / 'dataset.json'} channel_names "
                                    f"{dict(spec.channel_names)}; leave {where} out for this dataset")
    spec.channel_names = updated
    spec.modality = modality_from_channels(updated)


def apply_modality(spec, modality: str) -> None:
    """Set the modality of ``spec`` (a ``DatasetSpec``) as the user gave it, in place.

    A plain folder gets ``modality`` for every channel (no intensity guess follows). For
    nnU-Net/MSD the channel names of ``dataset.json`` stay; ``modality`` must agree with them:
    no channel may name another modality, and ``CT`` needs every channel named CT (the name
    that selects CT normalisation in nnU-Net).

    Raises:
        InputError: unknown modality value, or one that contradicts ``dataset.json``.
    """
    modality = normalise_modality(modality)
    if spec.format == "plain":
        spec.channel_names = {k: modality for k in spec.channel_names}
        spec.modality = modality
        return
    conflicting = {k: v for k, v in spec.channel_names.items()
                   if channel_modality(v) not in (None, modality) or (modality == "CT" and channel_modality(v) != "CT")}
    if conflicting:
        key = "modality" if spec.format == "msd" else "channel_names"
        raise InputError("--modality", f"{modality} contradicts {spec.root / 'dataset.json'} {key} {spec.channel_names} "
                                       f"(channel(s) {sorted(conflicting)}); leave --modality out for this dataset")
    spec.modality = modality


def preprocessing_modality(record: Mapping):
    """What ``data.preprocess`` takes for a task record: its modality string for one channel (exactly
    the behaviour and cache keys of single-channel tasks), one modality per channel for several."""
    mods = task_channel_modalities(record)
    return (record.get("modality") or mods[0]) if len(mods) == 1 else mods
