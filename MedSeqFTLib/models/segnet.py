"""The segmentation network shape every stage of the pipeline relies on.

``SegNet = encoder -> decoder -> head``. Keeping the three as named children gives stable
parameter names (``encoder.*``, ``decoder.*``, ``head.*``) so an encoder state dict can be
saved, distilled, LoRA-merged and loaded on its own.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SegNet", "init_head_prior", "HEAD_PRIOR"]

HEAD_PRIOR = 0.01  # RecipeConfig.head_prior's default


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


def init_head_prior(head: nn.Conv3d, prior: float = HEAD_PRIOR) -> nn.Conv3d:
    """Set ``head``'s biases so that a fresh head predicts each foreground class with ``prior``.

    Softmax over ``K`` output channels (channel 0 = background): bias ``log(prior)`` for every
    foreground channel and ``log(1 - (K - 1) * prior)`` for the background; the weights keep
    their random initialisation. This is the prior initialisation of focal-loss detectors (Lin
    et al., 2017). With PyTorch's default biases a fresh head predicts a foreground class on
    about 1/K of the voxels; the Dice loss then drives every foreground logit far below the
    background within a few dozen steps, where softmax saturates and small structures are
    learned hundreds of steps later (the MR phantom: no class at 500 steps; with the prior three
    of four classes at 250, docs/recipe.md "Head prior"). ``prior`` is lowered to
    ``0.5 / (K - 1)`` when there are too many classes for it. ``prior == 0`` leaves ``head``
    untouched.

    Returns:
        ``head`` (changed in place).
    """
    import math

    k = int(head.out_channels)
    if prior <= 0 or k < 2 or head.bias is None:
        return head
    p = min(float(prior), 0.5 / (k - 1))
    with torch.no_grad():
        head.bias.fill_(math.log(p))
        head.bias[0] = math.log(1.0 - (k - 1) * p)
    return head
