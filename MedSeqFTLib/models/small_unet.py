"""A small CPU-friendly 4-level residual U-Net built from MONAI's dynUNet blocks.

Channels ``feature_size * (1, 2, 4, 8)``, strides 1, 2, 2, 2, instance norm. Every encoder
level is a ``UnetResBlock`` whose channel count changes, so each carries MONAI's 1x1x1
residual projection ``conv3`` (a 1x1x1 ``Conv3d``; PEFT 0.21.2 cannot merge LoRA on those,
which the retention code has to handle).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SmallUNetEncoder", "SmallUNetDecoder", "build_encoder", "build_decoder", "build_parts", "out_channels", "SIZE_DIVISOR", "LORA_TARGETS"]

_MULT = (1, 2, 4, 8)
_STRIDES = (1, 2, 2, 2)
SIZE_DIVISOR = 8  # three stride-2 levels
LORA_TARGETS = ("conv3d",)  # a CNN without Linear layers: LoRA goes into every Conv3d


def out_channels(feature_size: int) -> list[int]:
    """Channels of the encoder outputs, fine to coarse."""
    return [feature_size * m for m in _MULT]


class SmallUNetEncoder(nn.Module):
    """``forward(x (B, C, X, Y, Z)) -> [f (X), 2f (X/2), 4f (X/4), 8f (X/8)]``."""

    def __init__(self, in_channels: int, feature_size: int = 8):
        from monai.networks.blocks import UnetResBlock

        super().__init__()
        chans = [in_channels] + out_channels(feature_size)
        self.levels = nn.ModuleList(
            UnetResBlock(3, chans[i], chans[i + 1], kernel_size=3, stride=_STRIDES[i], norm_name="instance")
            for i in range(len(_MULT))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for level in self.levels:
            x = level(x)
            outs.append(x)
        return outs


class SmallUNetDecoder(nn.Module):
    """``forward([f, 2f, 4f, 8f] fine to coarse) -> (B, f, X, Y, Z)`` via transposed-conv up blocks.

    ``forward(feats, all_scales=True)`` returns ``[(B, f, X..), (B, 2f, X/2..), (B, 4f, X/4..)]``
    for deep supervision.
    """

    def __init__(self, feature_size: int = 8):
        from monai.networks.blocks import UnetUpBlock

        super().__init__()
        chans = out_channels(feature_size)
        # ups[0] goes 8f -> 4f (joins level 2), ..., ups[2] goes 2f -> f (joins level 0)
        self.ups = nn.ModuleList(
            UnetUpBlock(3, chans[i + 1], chans[i], kernel_size=3, stride=1, upsample_kernel_size=2, norm_name="instance")
            for i in reversed(range(len(chans) - 1))
        )

    @property
    def scale_channels(self) -> list[int]:
        """Channels of each decoder output, finest first (what ``forward(..., all_scales=True)`` returns)."""
        return [up.conv_block.conv2.conv.out_channels for up in reversed(self.ups)]

    def forward(self, feats: list[torch.Tensor], all_scales: bool = False):
        """``all_scales``: return every up-block's output, finest (the usual output) first, for deep supervision."""
        x = feats[-1]
        outs = []
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = up(x, skip)
            outs.append(x)
        return outs[::-1] if all_scales else x


def build_encoder(arch) -> SmallUNetEncoder:
    return SmallUNetEncoder(int(arch.in_channels), int(arch.feature_size))


def build_decoder(arch) -> SmallUNetDecoder:
    return SmallUNetDecoder(int(arch.feature_size))


def build_parts(arch) -> tuple[SmallUNetEncoder, SmallUNetDecoder]:
    """(encoder, decoder) for ``arch``; the decoder outputs ``arch.feature_size`` channels."""
    return build_encoder(arch), build_decoder(arch)
