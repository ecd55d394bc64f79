"""Per-channel intensity normalisation: which scheme each channel gets, which channel finds the
body, and the MONAI steps of each scheme.

A channel's modality (``data.modality.channel_modalities``) picks its scheme:

=========  ==========================================================================================
modality   scheme
=========  ==========================================================================================
CT         the plan's ``preprocess.normalization``: ``"window"`` (the HU window -> [0, 1]: the scale
           the foundation model was pre-trained on), ``"ct_zscore"`` (nnU-Net's CT scheme: clip to the
           dataset's CT foreground 0.5/99.5 percentiles, z-score with its foreground mean/std) or
           ``"zscore"`` when the user sets it so
PET        ``"zscore"``: per-image z-score of the uptake inside the body. nnU-Net has no PET scheme (a
           channel named PET gets its default ``ZScoreNormalization``) and UNICON z-scores PET too:
           uptake values depend on dose, weight and time since injection, so one case's scale says
           little about another's, while the tumour-to-background ratio within a case survives
MR, other  ``"zscore"``: MR intensities have no physical unit (nnU-Net's rule for every non-CT channel)
=========  ==========================================================================================

Several CT channels (contrast phases) share one set of statistics (``plan.planner``): they are all
Hounsfield units, and one scale keeps the enhancement between phases visible to the network.
"""

from __future__ import annotations

from typing import Sequence, Union

from ..errors import InputError

__all__ = ["SCHEMES", "CT_BODY_HU", "CROP_MARGIN", "is_ct", "as_channel_modalities", "channel_schemes",
           "body_channel", "body_select_fn", "normalise_steps"]

SCHEMES = ("window", "ct_zscore", "zscore")
CT_BODY_HU = -500.0  # air is about -1000 HU, lung about -850..-500, fat -100: the body is above
CROP_MARGIN = 2  # voxels kept around the body when cropping


def is_ct(modality: str) -> bool:
    """``True`` for ``"CT"`` (any case); every other modality is normalised like MR.

    Raises:
        InputError: empty modality.
    """
    if not isinstance(modality, str) or not modality.strip():
        raise InputError("modality", f"needs a name such as 'CT' or 'MR', got {modality!r}")
    return modality.strip().upper() == "CT"


def as_channel_modalities(modality: Union[str, Sequence[str]], n_channels: int) -> list:
    """One modality per channel: a single name applies to every channel (the task-level
    ``modality`` of old), a list must name each of the ``n_channels``.

    Returns:
        e.g. ``["CT", "PET"]``, the names as given (stripped).

    Raises:
        InputError: an empty name, or a list of another length than ``n_channels``.
    """
    if isinstance(modality, str) or modality is None:
        is_ct(modality)
        return [modality.strip()] * int(n_channels)
    names = list(modality)
    if len(names) != int(n_channels):
        raise InputError("modality", f"{len(names)} channel modalities {names} for {n_channels} image file(s); "
                                     "give one image file per channel of the task")
    for name in names:
        is_ct(name)
    return [str(n).strip() for n in names]


def channel_schemes(modalities: Sequence[str], normalization: str) -> list:
    """The scheme of each channel (see the module docstring): CT channels get ``normalization``
    (``preprocess.normalization``), all others ``"zscore"``.

    Raises:
        InputError: ``normalization`` not one of ``SCHEMES``, or an empty modality.
    """
    if normalization not in SCHEMES:
        raise InputError("preprocess.normalization", f"must be one of {list(SCHEMES)}, got {normalization!r}")
    return [normalization if is_ct(m) else "zscore" for m in modalities]


def body_channel(modalities: Sequence[str]) -> int:
    """The channel whose intensities find the body for cropping: the first CT channel, else channel 0.

    CT first because Hounsfield units are a physical scale on which -500 HU separates air from the
    body on every scanner; PET (scatter, reconstruction noise) and MR (background noise) are above
    0 over much of the field of view, so their "body" would crop little. Without CT, channel 0:
    the primary image by the usual channel order, and one rule for every case of the task.
    """
    for k, m in enumerate(modalities):
        if is_ct(m):
            return k
    return 0


def _ct_body(x):
    return x > CT_BODY_HU


def _positive(x):
    return x > 0


def body_select_fn(modality: str):
    """``CropForegroundd``'s ``select_fn`` for a body-finding channel of ``modality``."""
    return _ct_body if is_ct(modality) else _positive


def normalise_steps(key: str, scheme: str, cfg) -> list:
    """MONAI dictionary transforms that normalise ``key`` (one or more channels of one scheme).

    Args:
        key: the data key, (C, X, Y, Z).
        scheme: one of ``SCHEMES``.
        cfg: the ``PreprocessConfig`` (``ct_window`` for ``"window"``, ``ct_stats`` for ``"ct_zscore"``).

    Raises:
        InputError: an unknown scheme, or ``"ct_zscore"`` without ``cfg.ct_stats``.
    """
    from monai.transforms import NormalizeIntensityd, ScaleIntensityRanged, ThresholdIntensityd

    if scheme == "window":
        low, high = cfg.ct_window
        return [ScaleIntensityRanged(key, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)]
    if scheme == "ct_zscore":
        if cfg.ct_stats is None:
            raise InputError("preprocess.ct_stats", "normalization 'ct_zscore' needs the dataset's [low, high, mean, std]")
        # nnU-Net's CT scheme: clip to the dataset's foreground 0.5/99.5 percentiles, then z-score
        # with the foreground mean and std (the same numbers for every case)
        low, high, mean, std = cfg.ct_stats
        return [ThresholdIntensityd(key, threshold=low, above=True, cval=low),
                ThresholdIntensityd(key, threshold=high, above=False, cval=high),
                NormalizeIntensityd(key, subtrahend=mean, divisor=std)]
    if scheme == "zscore":
        return [NormalizeIntensityd(key, nonzero=True, channel_wise=True)]
    raise InputError("preprocess.normalization", f"must be one of {list(SCHEMES)}, got {scheme!r}")
