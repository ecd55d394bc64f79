"""Self-supervised pretexts: one object serves SSL pretraining and MDS scoring.

A pretext computes, for a batch of volumes, ``n_views`` *stochastic* losses per volume in
one batched forward pass over ``B * n_views`` views (that is what makes MDS affordable: the
paper averages 1000 runs per case). Every random draw goes through the caller's
``torch.Generator``, so a score is reproducible from a seed and no global RNG is touched.

Pretexts (see ``ssl_masked``, ``ssl_voco``, ``ssl_voco_v2`` and ``ssl_monai``):
    ``"masked"``: masked-volume reconstruction (random cube masks, L1 on masked voxels).
    ``"voco"``: VoCo position contrast, our small variant (overlap prediction, L1).
    ``"voco_v2"``: VoCo's own SSL head and loss, as in the published VoCo_B/L/H_SSL_head checkpoints.
    ``"monai_ssl"``: MONAI Swin SSL heads (rotation, contrastive, reconstruction) and their loss.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import ArchConfig
from ..errors import InputError

__all__ = ["Pretext", "PRETEXTS", "get_pretext", "random_uniform", "check_volumes"]


class Pretext:
    """Base class of SSL pretexts.

    Attributes:
        name: registry name (stored in foundation-model metadata as ``ssl_pretext``).
    """

    name: str = ""

    def build_head(self, arch: ArchConfig) -> nn.Module:
        """A freshly initialised SSL head that reads the encoder outputs of ``arch``."""
        raise NotImplementedError

    def input_multiple(self, arch: ArchConfig) -> tuple[int, int, int]:
        """Each spatial size of ``volumes`` given to ``loss`` must be a multiple of these."""
        raise NotImplementedError

    def options(self) -> dict:
        """Constructor settings that shape the head (stored as ``ssl_options`` next to it); ``{}`` = defaults."""
        return {}

    def after_step(self, head: nn.Module) -> None:
        """Called after each optimiser step when a head is trained (VoCo: EMA teacher update)."""

    def loss(self, encoder: nn.Module, head: nn.Module, volumes: torch.Tensor, generator: torch.Generator,
             n_views: int) -> torch.Tensor:
        """Per-volume, per-view stochastic pretext losses.

        Args:
            encoder: ``encoder(x) -> list[Tensor]`` (fine to coarse).
            head: the module ``build_head`` made for this encoder.
            volumes: (B, C, X, Y, Z) float; sizes multiples of ``input_multiple(arch)``.
            generator: the only source of randomness (a CPU generator works for any device).
            n_views: stochastic views per volume, all evaluated in one forward pass.

        Returns:
            (B, n_views) losses, differentiable w.r.t. encoder and head parameters.

        Raises:
            InputError: volume sizes that the pretext cannot split, or ``n_views < 1``.
        """
        raise NotImplementedError


def random_uniform(shape: tuple, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``torch.rand`` drawn from ``generator`` (on its own device), then moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def check_volumes(volumes: torch.Tensor, multiple: tuple[int, int, int], n_views: int, name: str) -> None:
    """Raise ``InputError`` unless ``volumes`` is (B, C, X, Y, Z) with sizes divisible by ``multiple``."""
    if volumes.ndim != 5:
        raise InputError(f"{name} pretext", f"expected volumes (B, C, X, Y, Z), got shape {tuple(volumes.shape)}")
    if int(n_views) < 1:
        raise InputError(f"{name} pretext", f"n_views must be >= 1, got {n_views}")
    size = tuple(volumes.shape[2:])
    if any(s % m for s, m in zip(size, multiple)):
        raise InputError(f"{name} pretext", f"volume size {size} must be a multiple of {multiple} (crop or pad it)")


def _masked(**options):
    from .ssl_masked import MaskedPretext

    return MaskedPretext(**options)


def _voco(**options):
    from .ssl_voco import VoCoPretext

    return VoCoPretext(**options)


def _voco_v2(**options):
    from .ssl_voco_v2 import VoCoV2Pretext

    return VoCoV2Pretext(**options)


def _monai_ssl(**options):
    from .ssl_monai import MonaiSSLPretext

    return MonaiSSLPretext(**options)


# name -> factory; no options = the documented default settings
PRETEXTS: dict[str, Callable[..., Pretext]] = {"masked": _masked, "voco": _voco, "voco_v2": _voco_v2,
                                               "monai_ssl": _monai_ssl}


def get_pretext(name: str, options: dict | None = None) -> Pretext:
    """The pretext registered as ``name`` (see ``PRETEXTS``), built with ``options``.

    Args:
        name: registry name (``ssl_pretext`` in foundation metadata).
        options: constructor settings (``ssl_options`` in foundation metadata); ``None`` = defaults.

    Raises:
        InputError: unknown name or an option the pretext does not take.
    """
    if name not in PRETEXTS:
        raise InputError("ssl pretext", f"unknown pretext {name!r}; choose one of {sorted(PRETEXTS)}")
    try:
        return PRETEXTS[name](**(options or {}))
    except TypeError as exc:
        raise InputError("ssl_options", f"pretext {name!r} does not take {sorted(options or {})} ({exc})") from None
