"""Masked-volume reconstruction pretext (``"masked"``).

Each view zeroes a random ~40% of the ``block``^3-voxel cubes of the volume; a light
head reconstructs the volume from *all* encoder scales (1x1x1 projections, trilinear
upsampling to full size, summed, then two small convolutions). The loss of a view is the
L1 error averaged over its masked voxels, so a case the encoder "understands" well scores low.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ArchConfig
from .ssl import Pretext, check_volumes, random_uniform

__all__ = ["MaskedPretext", "ReconstructionHead", "block_masks"]


class ReconstructionHead(nn.Module):
    """``forward(feats: list[(B, C_i, X_i, Y_i, Z_i)]) -> (B, out_channels, X_0, Y_0, Z_0)``."""

    def __init__(self, in_channels: list[int], out_channels: int, width: int = 16):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv3d(c, width, kernel_size=1) for c in in_channels)
        self.refine = nn.Conv3d(width, width, kernel_size=3, padding=1)
        self.out = nn.Conv3d(width, out_channels, kernel_size=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[2:]
        x = 0
        for lateral, f in zip(self.lateral, feats):
            y = lateral(f)
            if y.shape[2:] != size:
                y = F.interpolate(y, size=size, mode="trilinear", align_corners=False)
            x = x + y
        x = F.leaky_relu(self.refine(F.leaky_relu(x, 0.01)), 0.01)
        return self.out(x)


def block_masks(n: int, size: tuple[int, int, int], block: int, ratio: float, generator: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """``n`` random cube masks, (n, 1, X, Y, Z) float, 1 = masked.

    Exactly ``max(1, round(ratio * n_blocks))`` of the ``ceil(size / block)`` blocks are masked
    in each mask (a random permutation per mask, drawn from ``generator``).
    """
    grid = [-(-s // block) for s in size]
    n_blocks = grid[0] * grid[1] * grid[2]
    n_masked = max(1, round(ratio * n_blocks))
    order = random_uniform((n, n_blocks), generator, device).argsort(dim=1)
    mask = torch.zeros(n, n_blocks, device=device)
    mask.scatter_(1, order[:, :n_masked], 1.0)
    mask = mask.view(n, 1, *grid)
    for axis in range(3):
        mask = mask.repeat_interleave(block, dim=2 + axis)
    return mask[:, :, : size[0], : size[1], : size[2]].contiguous()


class MaskedPretext(Pretext):
    """Masked-volume reconstruction.

    Args:
        block: edge of a masked cube in voxels (8).
        ratio: share of cubes masked per view (0.4).
        width: channels of the reconstruction head (16).
    """

    name = "masked"

    def __init__(self, block: int = 8, ratio: float = 0.4, width: int = 16):
        self.block = int(block)
        self.ratio = float(ratio)
        self.width = int(width)

    def build_head(self, arch: ArchConfig) -> nn.Module:
        from .registry import encoder_out_channels

        return ReconstructionHead(encoder_out_channels(arch), int(arch.in_channels), self.width)

    def input_multiple(self, arch: ArchConfig) -> tuple[int, int, int]:
        from .registry import size_divisor

        d = size_divisor(arch)
        return (d, d, d)

    def loss(self, encoder, head, volumes, generator, n_views):
        """See ``Pretext.loss``; returns (B, n_views) masked-voxel L1 errors."""
        check_volumes(volumes, (1, 1, 1), n_views, self.name)
        b, _, *size = volumes.shape
        x = volumes.repeat_interleave(int(n_views), dim=0)  # view v of volume i is row i * n_views + v
        mask = block_masks(x.shape[0], tuple(size), self.block, self.ratio, generator, volumes.device)
        recon = head(encoder(x * (1.0 - mask)))
        err = (recon - x).abs().mean(dim=1, keepdim=True) * mask
        per_view = err.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)
        return per_view.view(b, int(n_views))
