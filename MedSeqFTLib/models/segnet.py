"""The segmentation network shape every stage of the pipeline relies on.

``SegNet = encoder -> decoder -> head``. Keeping the three as named children gives stable
parameter names (``encoder.*``, ``decoder.*``, ``head.*``) so an encoder state dict can be
saved, distilled, LoRA-merged and loaded on its own.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SegNet"]


class SegNet(nn.Module):
    """Encoder + decoder + 1x1x1 head.

    Args:
        encoder: ``encoder(x (B, C, X, Y, Z)) -> list[Tensor]``, multi-scale outputs, fine to
            coarse (all of them; K&G RFT distils these).
        decoder: ``decoder(list[Tensor]) -> Tensor (B, F, X, Y, Z)``.
        head: ``nn.Conv3d(F, n_classes, 1)``.
        size_divisor: every spatial input size must be a multiple of this.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Conv3d, size_divisor: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.size_divisor = int(size_divisor)

    @property
    def n_classes(self) -> int:
        return int(self.head.out_channels)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is (B, C, X, Y, Z) with sizes divisible by ``size_divisor``."""
        if x.ndim != 5:
            raise ValueError(f"expected a (B, C, X, Y, Z) tensor, got shape {tuple(x.shape)}")
        bad = [s for s in x.shape[2:] if s % self.size_divisor]
        if bad:
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {self.size_divisor}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C, X, Y, Z). Returns: logits (B, n_classes, X, Y, Z).

        Raises:
            ValueError: wrong rank or a spatial size not divisible by ``size_divisor``.
        """
        self.check_input(x)
        return self.head(self.decoder(self.encoder(x)))
