"""SSL pretraining of a small foundation model (used by ``medseqft pretrain`` and the demo).

Random patches are cut from the given volumes (zero-padded where a volume is smaller than the
patch), the pretext loss (one view per patch) is minimised with AdamW. On the CPU the result
is bit-identical for a given seed: the weights come from ``torch.manual_seed(seed)``, patches
from ``np.random.default_rng(seed)`` and pretext randomness from a seeded ``torch.Generator``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..config import ArchConfig
from ..errors import InputError

__all__ = ["pretrain", "random_patches"]


def random_patches(volumes: Sequence[np.ndarray], patch_size: tuple, batch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(batch_size, C, *patch_size) float32 patches at random volumes and positions."""
    out = []
    for _ in range(batch_size):
        vol = volumes[int(rng.integers(len(volumes)))]
        pads = [(0, 0)] + [(0, max(0, p - s)) for p, s in zip(patch_size, vol.shape[1:])]
        if any(p[1] for p in pads):
            vol = np.pad(vol, pads)
        starts = [int(rng.integers(s - p + 1)) for s, p in zip(vol.shape[1:], patch_size)]
        sl = tuple(slice(a, a + p) for a, p in zip(starts, patch_size))
        out.append(vol[(slice(None),) + sl])
    return np.stack(out).astype(np.float32, copy=False)


def pretrain(volumes: Sequence[np.ndarray], arch: ArchConfig, pretext: str, steps: int, seed: int,
             patch_size: Sequence[int], batch_size: int = 2, lr: float = 1e-3,
             progress: Callable[[int, int, dict], None] | None = None):
    """Pretrain a fresh encoder and SSL head of ``arch`` with ``pretext``.

    Args:
        volumes: preprocessed (C, X, Y, Z) float32 arrays, C = ``arch.in_channels``.
        arch: backbone to build.
        pretext: ``"masked"`` or ``"voco"``.
        steps: optimiser steps.
        seed: makes the run reproducible (CPU).
        patch_size: (x, y, z), multiples of ``get_pretext(pretext).input_multiple(arch)``.
        batch_size: patches per step.
        lr: AdamW learning rate (weight decay 1e-5).
        progress: called as ``progress(step, steps, {"loss": value})`` after every step
            (step counts from 1); it may raise (e.g. ``Cancelled``) to stop.

    Returns:
        (encoder, ssl_head, losses): modules in eval mode, one loss per step.

    Raises:
        InputError: no volumes, wrong array shape/channels, bad steps/batch size, or a patch
            size the pretext cannot use.
    """
    import torch

    from .registry import build_encoder
    from .ssl import get_pretext

    task = get_pretext(pretext)
    patch = tuple(int(p) for p in patch_size)
    _validate(volumes, arch, steps, batch_size, patch, task.input_multiple(arch))

    torch.manual_seed(seed)
    encoder = build_encoder(arch)
    head = task.build_head(arch)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(seed))
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=1e-5)
    encoder.train()
    head.train()
    losses = []
    for step in range(1, int(steps) + 1):
        batch = torch.from_numpy(random_patches(volumes, patch, int(batch_size), rng))
        loss = task.loss(encoder, head, batch, generator, 1).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, int(steps), {"loss": losses[-1]})
    return encoder.eval(), head.eval(), losses


def _validate(volumes, arch: ArchConfig, steps: int, batch_size: int, patch: tuple, multiple: tuple) -> None:
    if len(volumes) == 0:
        raise InputError("pretrain", "no volumes given")
    for i, vol in enumerate(volumes):
        if not isinstance(vol, np.ndarray) or vol.ndim != 4:
            raise InputError(f"pretrain volume {i}", f"expected a (C, X, Y, Z) array, got {getattr(vol, 'shape', type(vol))}")
        if vol.shape[0] != arch.in_channels:
            raise InputError(f"pretrain volume {i}", f"has {vol.shape[0]} channels, arch expects {arch.in_channels}")
    if int(steps) < 1:
        raise InputError("pretrain steps", f"must be >= 1, got {steps}")
    if int(batch_size) < 1:
        raise InputError("pretrain batch_size", f"must be >= 1, got {batch_size}")
    if len(patch) != 3 or any(p % m for p, m in zip(patch, multiple)):
        raise InputError("pretrain patch_size", f"{patch} must be 3 multiples of {multiple} for this backbone and pretext")
