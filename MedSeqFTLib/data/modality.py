"""The modality of a dataset (``CT``, ``MR``, ``PET`` or ``other``): read from channel names or given.

Only ``CT`` changes what training does (nnU-Net's CT normalisation, see ``preprocess.is_ct``);
everything else is normalised per case with a z-score. nnU-Net and MSD datasets name their
channels in ``dataset.json``; a plain folder does not, so ``validate.validate_dataset`` guesses
from intensities unless ``apply_modality`` (``medseqft add-task --modality``) sets it first.
"""

from __future__ import annotations

from typing import Optional

from ..errors import InputError

__all__ = ["MODALITIES", "modality_from_channels", "normalise_modality", "channel_modality", "apply_modality"]

MODALITIES = ("CT", "MR", "PET", "other")
# channel names of dataset.json that state an MR image: MR itself and the usual sequence names
_MR_NAMES = {"MR", "MRI", "T1", "T1W", "T1GD", "T1CE", "T1C", "T2", "T2W", "FLAIR", "ADC", "DWI", "PD", "SWI", "HBV"}


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
    """The modality a ``dataset.json`` channel name states: ``"CT"``, ``"PET"``, ``"MR"`` (also for
    MR sequence names such as T2, FLAIR, ADC), or ``None`` when the name does not say
    (e.g. nnU-Net's ``"zscore"`` or ``"noNorm"``)."""
    key = str(name).strip().upper()
    if key in ("CT", "PET"):
        return key
    return "MR" if key in _MR_NAMES else None


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
