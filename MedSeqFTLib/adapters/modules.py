"""The small modules an adapter task owns or routes through.

An adapter task's network is a ``SegNet`` whose decoder is an ``AdaptedDecoder``: the frozen
base's feature map (the base decoder's output, or the encoder's ``Hypercolumn`` when the base
has no trained decoder) followed by the task's adapter (``SpatialAdapter`` or identity). So
inference, evaluation and the Slicer panels treat it like any other task's model.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpatialAdapter", "Hypercolumn", "AdaptedDecoder"]


class SpatialAdapter(nn.Module):
    """FSEFT's black-box spatial adapter: ``x + conv(ReLU(conv(x)))`` with the channel count kept.

    ``kernel_size`` 3 (the spatial adapter) or 1 (its 1x1x1 variant). The second convolution
    starts at zero, so a fresh adapter is the identity and training starts from the base's features.

    Shapes: (B, C, X, Y, Z) -> (B, C, X, Y, Z).
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        pad = int(kernel_size) // 2
        self.conv1 = nn.Conv3d(channels, channels, kernel_size, padding=pad)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size, padding=pad)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class Hypercolumn(nn.Module):
    """Every encoder output upsampled (trilinear) to the finest one's size and concatenated.

    The "last feature map" of a base without a trained decoder (a sequence whose first task is an
    adapter task: M0 has only its encoder). No parameters.

    Shapes: ``[(B, C_i, X_i, Y_i, Z_i)]`` fine to coarse -> (B, sum C_i, X_0, Y_0, Z_0).
    """

    def __init__(self, channels: list):
        super().__init__()
        self.out_channels = int(sum(channels))

    def forward(self, feats: list) -> torch.Tensor:
        size = feats[0].shape[2:]
        ups = [f if f.shape[2:] == size else F.interpolate(f, size=size, mode="trilinear", align_corners=False)
               for f in feats]
        return torch.cat(ups, dim=1)


class AdaptedDecoder(nn.Module):
    """``adapter(base(encoder outputs))``: the base's feature map, then the task's adapter.

    Args:
        base: the base decoder (``list[Tensor] -> (B, F, X, Y, Z)``) or a ``Hypercolumn``.
        adapter: the task's ``SpatialAdapter`` or ``None`` (identity).
    """

    def __init__(self, base: nn.Module, adapter: Optional[nn.Module] = None):
        super().__init__()
        self.base = base
        self.adapter = adapter if adapter is not None else nn.Identity()

    def features(self, feats: list) -> torch.Tensor:
        """The frozen base's feature map (what the transductive step caches)."""
        return self.base(feats)

    def forward(self, feats: list) -> torch.Tensor:
        return self.adapter(self.base(feats))
