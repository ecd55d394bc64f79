"""VoCo-style position-contrast pretext (``"voco"``), scaled to small volumes.

VoCo (Wu et al.) splits a 192x192x64 region into 3x3 base cubes of 64^3, takes random 64^3
crops, and trains the encoder so that ReLU(cosine) between a crop's and each base cube's
embedding equals their x-y overlap fraction. Here the *given volume* is the region:

* base cubes: a ``grid`` x ``grid`` split of the volume in x-y (default 2x2), full z, so a
  base cube is (X/grid, Y/grid, Z) voxels and the volume must be a multiple of
  (grid * d, grid * d, d) where d is the encoder's size divisor (small U-Net 32^3 -> 16x16x32
  cubes; SwinUNETR 64^3 -> 32x32x64);
* each view is one random crop of the same size at a random integer x-y offset;
* target[i] = area(crop ∩ base_i) / area(crop) (sums to 1);
* embedding = MLP(concat of adaptive-average-pooled encoder outputs at all scales); the
  MLP's dropout is always active (also in eval mode), as in VoCo, which makes the loss
  stochastic: MDS averages many views. Dropout masks come from the caller's generator.
* loss of a view = mean_i |ReLU(cos(crop, base_i)) - target[i]|.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ArchConfig
from .ssl import Pretext, check_volumes, random_uniform

__all__ = ["VoCoPretext", "ProjectionHead", "overlap_targets"]


class ProjectionHead(nn.Module):
    """``forward(x (N, in_dim), generator) -> (N, out_dim)``: Linear-GELU-Dropout-Linear.

    The dropout ignores ``self.training`` on purpose (VoCo keeps it active when scoring).
    """

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 128, dropout: float = 0.2):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h = F.gelu(self.fc1(x))
        if self.dropout > 0:
            if generator is None:
                keep = torch.rand(h.shape, device=h.device)
            else:
                keep = random_uniform(tuple(h.shape), generator, h.device)
            h = h * (keep >= self.dropout).to(h.dtype) / (1.0 - self.dropout)
        return self.fc2(h)


def overlap_targets(ox: torch.Tensor, oy: torch.Tensor, cx: int, cy: int, grid: int) -> torch.Tensor:
    """x-y overlap fraction of crops with the base cubes.

    Args:
        ox, oy: crop offsets, any shape S (integer tensors).
        cx, cy: crop (= base cube) size in x and y.
        grid: base cubes per axis; base (i, j) covers x in [i*cx, (i+1)*cx), y in [j*cy, (j+1)*cy).

    Returns:
        S + (grid * grid,) fractions, base index i * grid + j.
    """
    starts_x = torch.arange(grid, device=ox.device) * cx
    starts_y = torch.arange(grid, device=oy.device) * cy
    ovx = ((ox[..., None] + cx).clamp(max=starts_x + cx) - ox[..., None].clamp(min=starts_x)).clamp(min=0)
    ovy = ((oy[..., None] + cy).clamp(max=starts_y + cy) - oy[..., None].clamp(min=starts_y)).clamp(min=0)
    frac = (ovx[..., :, None].float() / cx) * (ovy[..., None, :].float() / cy)
    return frac.flatten(-2)


class VoCoPretext(Pretext):
    """VoCo position contrast.

    Args:
        grid: base cubes per x/y axis (2; VoCo uses 3 on 192x192x64 regions).
        hidden, out_dim, dropout: projection-head MLP sizes and its always-on dropout.
    """

    name = "voco"

    def __init__(self, grid: int = 2, hidden: int = 512, out_dim: int = 128, dropout: float = 0.2):
        self.grid = int(grid)
        self.hidden = int(hidden)
        self.out_dim = int(out_dim)
        self.dropout = float(dropout)

    def build_head(self, arch: ArchConfig) -> nn.Module:
        from .registry import encoder_out_channels

        return ProjectionHead(sum(encoder_out_channels(arch)), self.hidden, self.out_dim, self.dropout)

    def input_multiple(self, arch: ArchConfig) -> tuple[int, int, int]:
        from .registry import size_divisor

        d = size_divisor(arch)
        return (self.grid * d, self.grid * d, d)

    def loss(self, encoder, head, volumes, generator, n_views):
        """See ``Pretext.loss``; returns (B, n_views) mean |ReLU(cos) - overlap| per crop."""
        g = self.grid
        check_volumes(volumes, (g, g, 1), n_views, self.name)
        b, c, sx, sy, sz = volumes.shape
        v, cx, cy, nb = int(n_views), sx // g, sy // g, g * g
        # (B, C, g, cx, g, cy, Z) -> (B * g * g, C, cx, cy, Z), base index i * g + j
        bases = volumes.reshape(b, c, g, cx, g, cy, sz).permute(0, 2, 4, 1, 3, 5, 6).reshape(b * nb, c, cx, cy, sz)
        offsets = random_uniform((2, b, v), generator, torch.device("cpu"))
        ox = (offsets[0] * (sx - cx + 1)).long().clamp(max=sx - cx)
        oy = (offsets[1] * (sy - cy + 1)).long().clamp(max=sy - cy)
        crops = torch.stack([volumes[i, :, ox[i, k]:ox[i, k] + cx, oy[i, k]:oy[i, k] + cy, :]
                             for i in range(b) for k in range(v)])
        target = overlap_targets(ox, oy, cx, cy, g).to(volumes.device)  # (B, V, nb)

        feats = encoder(torch.cat([bases, crops], dim=0))  # one batched pass over B*nb + B*V cubes
        pooled = torch.cat([F.adaptive_avg_pool3d(f, 1).flatten(1) for f in feats], dim=1)
        dim = pooled.shape[1]
        base_vec = pooled[: b * nb].view(b, 1, nb, dim).expand(b, v, nb, dim)
        crop_vec = pooled[b * nb:].view(b, v, 1, dim)
        # every view gets its own dropout draw for its crop and its copy of the bases
        emb = head(torch.cat([crop_vec, base_vec], dim=2).reshape(-1, dim), generator).view(b, v, 1 + nb, -1)
        pred = F.relu(F.cosine_similarity(emb[:, :, :1], emb[:, :, 1:], dim=-1))
        return (pred - target).abs().mean(dim=-1)
