"""Deep supervision: auxiliary segmentation heads on the decoder's coarser outputs (nnU-Net's habit).

Where the decoder can return every scale (``decoder(feats, all_scales=True)``, e.g. the small
U-Net), each coarser output gets a 1x1x1 head and its own Dice + CE against the label map
downsampled by nearest neighbour. The losses are weighted 1, 1/2, 1/4, ... (normalised to sum
to 1), as nnU-Net does, whose coarsest output gets weight 0; we supervise every decoder output
since our decoders are shallow. The auxiliary heads exist only during training: the saved model
is the usual encoder + decoder + head, so inference, LoRA and merging are unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import nn

__all__ = ["DeepSupervision", "make_deep_supervision", "aux_head_seed", "segmentation_step"]


class DeepSupervision(nn.Module):
    """Auxiliary 1x1x1 heads for decoder outputs with ``channels`` (the coarser scales, finest first)."""

    def __init__(self, channels, n_classes: int, head_prior: float = 0.01):
        from ..models.segnet import init_head_prior

        super().__init__()
        self.heads = nn.ModuleList(init_head_prior(nn.Conv3d(int(c), int(n_classes), kernel_size=1), head_prior)
                                   for c in channels)
        w = [0.5 ** (i + 1) for i in range(len(channels))]
        total = 1.0 + sum(w)
        self.main_weight = 1.0 / total
        self.weights = [v / total for v in w]


def make_deep_supervision(net, enabled: bool, seed: Optional[int] = None,
                          head_prior: float = 0.01) -> Optional[DeepSupervision]:
    """``DeepSupervision`` for ``net``'s decoder and head, or ``None`` (disabled, or a decoder without scales).

    ``seed``: initialise the auxiliary heads from this seed without touching the global RNG (so
    every strategy that trains a task starts them alike); ``None`` = from the global RNG.
    ``head_prior``: as ``RecipeConfig.head_prior``.
    """
    if not enabled or not hasattr(net.decoder, "scale_channels"):
        return None
    if seed is None:
        return DeepSupervision(net.decoder.scale_channels[1:], int(net.head.out_channels), head_prior)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return DeepSupervision(net.decoder.scale_channels[1:], int(net.head.out_channels), head_prior)


def aux_head_seed(spec) -> int:
    """Seed of a stage's auxiliary heads: from its data seed, shared by the stages that draw the same task patches."""
    from .trainer import derive_seed

    return derive_seed(spec.data_seed if spec.data_seed is not None else spec.seed, "deep-supervision")


def segmentation_step(net, feats, label, loss_fn, ds: Optional[DeepSupervision] = None):
    """Dice + CE of ``net``'s head on encoder outputs ``feats`` against ``label`` (B, 1, X, Y, Z),
    plus the weighted auxiliary losses when ``ds`` is given. Returns the scalar loss."""
    if ds is None:
        return loss_fn(net.head(net.decoder(feats)), label)
    outs = net.decoder(feats, all_scales=True)
    loss = ds.main_weight * loss_fn(net.head(outs[0]), label)
    for head, weight, out in zip(ds.heads, ds.weights, outs[1:]):
        small = F.interpolate(label.float(), size=out.shape[2:], mode="nearest").long()
        loss = loss + weight * loss_fn(head(out), small)
    return loss
