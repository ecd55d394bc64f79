"""VoCo-compatible MONAI SwinUNETR (``use_v2=True``) split into encoder / decoder.

We build MONAI's own ``SwinUNETR`` and re-parent its children, so parameter names under
``encoder.`` are MONAI's (``encoder.swinViT.layers1.0.blocks.0.attn.qkv.weight``,
``encoder.encoder1...``) and published VoCo / MONAI-SSL checkpoints map by name.

MONAI 1.5 (PR #8285) fixed the voxel order of the 3D ``PatchMerging`` used by
``downsample="merging"``. The old order concatenated the 8 sub-grids as
(0,0,0) (1,0,0) (0,1,0) (0,0,1) (1,0,1) (0,1,0) (0,0,1) (1,1,1): two of them twice and
(1,1,0), (0,1,1) never. Every public Swin SSL checkpoint was trained with that order, so
``ArchConfig.legacy_patch_merging=True`` swaps in ``LegacyPatchMerging`` to compute the
features those weights expect; the parameters (``reduction``, ``norm``) are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets.swin_unetr import PatchMergingV2
from torch import nn

__all__ = ["LEGACY_ORDER", "LegacyPatchMerging", "SwinEncoder", "SwinDecoder", "build_swinunetr", "split_swinunetr", "build_parts",
           "out_channels", "SIZE_DIVISOR", "LORA_TARGETS"]

SIZE_DIVISOR = 32  # patch embedding (2) followed by four 2x merges: 2**5
# LoRA goes into every nn.Linear (the 36 Swin linears), the paper's "every linear layer";
# retention.lora_targets "linear+conv3d" adds the patch embedding and the UNETR-block convolutions
LORA_TARGETS = ("linear",)

# (d, h, w) offsets of the 8 sub-grids in the concatenation order of MONAI < 1.5
LEGACY_ORDER = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1))


def out_channels(feature_size: int) -> list[int]:
    """Channels of ``[enc0, enc1, enc2, enc3, hidden_states_out[3], dec4]``, fine to coarse."""
    f = feature_size
    return [f, f, 2 * f, 4 * f, 8 * f, 16 * f]


class LegacyPatchMerging(PatchMergingV2):
    """3D patch merging with the pre-MONAI-1.5 voxel order (see ``LEGACY_ORDER``).

    Same parameters as MONAI's ``PatchMerging`` (``norm``, ``reduction``), so checkpoints
    load into it unchanged. Input (B, D, H, W, C) channel-last tokens; output
    (B, ceil(D/2), ceil(H/2), ceil(W/2), 2C). 2D input falls back to MONAI's code.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        _, d, h, w, _ = x.shape
        if d % 2 or h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2, 0, d % 2))
        x = torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in LEGACY_ORDER], -1)
        return self.reduction(self.norm(x))


class SwinEncoder(nn.Module):
    """SwinUNETR's encoding path: ``swinViT`` + ``encoder1..4`` + ``encoder10``.

    ``forward(x (B, C, X, Y, Z))`` returns, with f = feature_size,
    ``[enc0 (f, X), enc1 (f, X/2), enc2 (2f, X/4), enc3 (4f, X/8), hs3 (8f, X/16), dec4 (16f, X/32)]``
    exactly as ``SwinUNETR.forward`` computes them (``normalize=True`` layer-norms the
    ``swinViT`` stage outputs, as MONAI does).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.normalize = bool(net.normalize)
        self.swinViT = net.swinViT
        self.encoder1 = net.encoder1
        self.encoder2 = net.encoder2
        self.encoder3 = net.encoder3
        self.encoder4 = net.encoder4
        self.encoder10 = net.encoder10

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.swinViT(x, self.normalize)
        return [
            self.encoder1(x),
            self.encoder2(hidden[0]),
            self.encoder3(hidden[1]),
            self.encoder4(hidden[2]),
            hidden[3],
            self.encoder10(hidden[4]),
        ]


class SwinDecoder(nn.Module):
    """SwinUNETR's ``decoder5..decoder1``; ``forward(encoder outputs) -> (B, f, X, Y, Z)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.decoder5 = net.decoder5
        self.decoder4 = net.decoder4
        self.decoder3 = net.decoder3
        self.decoder2 = net.decoder2
        self.decoder1 = net.decoder1

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        enc0, enc1, enc2, enc3, hs3, dec4 = feats
        dec3 = self.decoder5(dec4, hs3)
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        dec0 = self.decoder2(dec1, enc1)
        return self.decoder1(dec0, enc0)


def build_swinunetr(arch, out_channels: int = 1) -> nn.Module:
    """MONAI ``SwinUNETR(use_v2=True)`` for ``arch``, with the legacy merge order if asked.

    Raises:
        ValueError: from MONAI when ``arch.feature_size`` is not a multiple of 12.
    """
    from monai.networks.nets import SwinUNETR

    downsample = LegacyPatchMerging if arch.legacy_patch_merging else "merging"
    return SwinUNETR(
        in_channels=int(arch.in_channels),
        out_channels=int(out_channels),
        feature_size=int(arch.feature_size),
        use_v2=True,
        normalize=True,
        downsample=downsample,
    )


def split_swinunetr(net: nn.Module) -> tuple[SwinEncoder, SwinDecoder]:
    """Re-parent a MONAI ``SwinUNETR``'s children into (encoder, decoder); ``net.out`` is dropped."""
    return SwinEncoder(net), SwinDecoder(net)


def build_parts(arch) -> tuple[SwinEncoder, SwinDecoder]:
    """(encoder, decoder) for ``arch``; the decoder outputs ``arch.feature_size`` channels."""
    return split_swinunetr(build_swinunetr(arch))
