"""Model surgery of the adapter mode: the task's network on a frozen base, and what the task owns.

``build_adapter_net`` puts the base's tensors (E and, when the base has one, its decoder) into a
``SegNet`` whose decoder is an ``AdaptedDecoder``, adds the method's modules and marks exactly the
method's parameters trainable. ``owned_state`` is what the task stores (only those parameters);
``load_owned`` puts them back, refusing a file that does not hold exactly them.

Parameter names: ``encoder.*`` (LoRA: ``...lora_A.default.weight``), ``decoder.base.*`` (the base
decoder, or a new one when the base has none and the method trains one), ``decoder.adapter.*``
(spatial adapters) and ``head.*``.
"""

from __future__ import annotations

from typing import Optional

from ..errors import InputError
from .config import BLACK_BOX, METHODS

__all__ = ["build_adapter_net", "check_method", "owned_state", "load_owned", "lora_targets_for", "MAX_HYPERCOLUMN_CHANNELS"]

# a hypercolumn of SwinUNETR-B's six outputs would be 1,488 channels at full resolution (GBs per patch)
MAX_HYPERCOLUMN_CHANNELS = 512
# the 3x3x3 spatial adapter on the small U-Net's 120-channel hypercolumn: 778k parameters and about 100 s per
# step on one CPU thread at 32^3 (measured), more than the whole network; wider maps take the 1x1x1 variant
MAX_SPATIAL_ADAPTER_CHANNELS = 64


def lora_targets_for(arch, encoder) -> list:
    """LoRA layers of the ``lora`` method: FSEFT's attention ``qkv`` of every Swin block; every
    ``Conv3d`` of a CNN backbone (the small U-Net has no attention, its convolutions are its weights)."""
    from ..models.registry import lora_target_modules

    if arch.name == "swin_unetr":
        return [n for n in lora_target_modules(encoder, ("linear",)) if n.endswith("attn.qkv")]
    return lora_target_modules(encoder, ("conv3d",))


def check_method(arch, method: str, base_has_decoder: bool) -> None:
    """Refuse, before any work, a method this backbone and base cannot take (see ``build_adapter_net``).

    Raises:
        InputError: unknown method; bitfit on a backbone without biases; a black-box method on a
            base without decoder whose hypercolumn would be too wide.
    """
    from ..models.registry import build_encoder, encoder_out_channels

    if method not in METHODS:
        raise InputError("--method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "bitfit" and not any(n.endswith(".bias") for n, _ in build_encoder(arch).named_parameters()):
        # MONAI's residual blocks put instance norm (no affine) after bias-free convolutions:
        # BitFit would train the classifier alone, i.e. be linear_probe under another name
        raise InputError("--method", f"bitfit: the {arch.name} encoder has no bias to tune (bias-free convolutions "
                                     "before instance norm); use linear_probe, spatial_adapter or lora")
    width = int(sum(encoder_out_channels(arch)))
    if method in BLACK_BOX and not base_has_decoder and width > MAX_HYPERCOLUMN_CHANNELS:
        raise InputError("--method", f"{method} on a base without a trained decoder would see a {width}-channel "
                                     f"hypercolumn of the {arch.name} encoder; add a kg_rft task before it "
                                     "or use --method bitfit, lora or decoder")
    if method == "spatial_adapter" and not base_has_decoder and width > MAX_SPATIAL_ADAPTER_CHANNELS:
        raise InputError("--method", f"spatial_adapter on a base without a trained decoder would run 3x3x3 convolutions "
                                     f"on the {width}-channel hypercolumn of the {arch.name} encoder (too slow and larger "
                                     "than the network); add a kg_rft task before it, or use spatial_adapter_1x1 or "
                                     "linear_probe")


def _trainable(method: str, name: str, base_decoder: bool) -> bool:
    """Whether parameter ``name`` of an adapter net trains under ``method`` (see config's docstring)."""
    if name.startswith("head.") or method == "full":
        return True
    if name.startswith("decoder.adapter."):
        return True
    if name.startswith("decoder.base."):
        if method == "decoder" or (not base_decoder and method not in BLACK_BOX):
            return True  # no trained decoder to keep: the task owns a new one
        return method == "bitfit" and name.endswith(".bias")
    if name.startswith("encoder."):
        if method == "bitfit":
            return name.endswith(".bias")
        return method == "lora" and "lora_" in name
    return False


def build_adapter_net(arch, n_classes: int, method: str, encoder_state: dict, decoder_state: Optional[dict],
                      lora_rank: int = 4, head_prior: float = 0.01):
    """The adapter task's ``SegNet`` on its base, with only the method's parameters trainable.

    Draws new weights (decoder when needed, adapter, LoRA A, head) from torch's global RNG:
    seed it first.

    Args:
        arch: the workspace's ``ArchConfig``.
        n_classes: the task's classes incl. background.
        method: one of ``METHODS``.
        encoder_state: the base encoder's state dict (M0's or a kg_rft task's E_t).
        decoder_state: the base task's decoder state dict, or ``None`` (base = M0).
        lora_rank: rank of the ``lora`` method (alpha = rank).
        head_prior: the head's foreground prior (``segnet.init_head_prior``).

    Returns:
        ``SegNet`` (CPU, train mode) with ``requires_grad`` set per the method.

    Raises:
        InputError: unknown method; a black-box method on a base without decoder whose
            hypercolumn would be too wide.
    """
    from torch import nn

    from ..models.registry import build_encoder, build_decoder, encoder_out_channels, size_divisor
    from ..models.segnet import SegNet, init_head_prior
    from ..retention.merge import add_lora
    from .modules import AdaptedDecoder, Hypercolumn, SpatialAdapter

    has_decoder = decoder_state is not None
    check_method(arch, method, has_decoder)
    encoder = build_encoder(arch)
    encoder.load_state_dict(encoder_state, strict=True)
    if method in BLACK_BOX and not has_decoder:
        base = Hypercolumn(encoder_out_channels(arch))
        channels = base.out_channels
    else:
        base = build_decoder(arch)
        if has_decoder:
            base.load_state_dict(decoder_state, strict=True)
        channels = int(arch.feature_size)
    adapter = None
    if method in ("spatial_adapter", "spatial_adapter_1x1"):
        adapter = SpatialAdapter(channels, 3 if method == "spatial_adapter" else 1)
    head = init_head_prior(nn.Conv3d(channels, int(n_classes), kernel_size=1), head_prior)
    if method == "lora":
        encoder = add_lora(encoder, int(lora_rank), float(lora_rank), targets=lora_targets_for(arch, encoder))
    net = SegNet(encoder, AdaptedDecoder(base, adapter), head, size_divisor(arch))
    for name, p in net.named_parameters():
        p.requires_grad_(_trainable(method, name, has_decoder))
    return net.train()


def owned_state(net) -> dict:
    """``{name: tensor}`` of the trainable parameters: everything an adapter task stores (CPU copies)."""
    return {n: p.detach().cpu().clone() for n, p in net.named_parameters() if p.requires_grad}


def load_owned(net, tensors: dict, where) -> None:
    """Copy a task's stored tensors into ``net`` (built by ``build_adapter_net`` for the same method).

    Raises:
        InputError: the file lacks one of the method's tensors, has extra ones, or a shape differs.
    """
    import torch

    params = dict(net.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    missing, extra = sorted(wanted - set(tensors)), sorted(set(tensors) - wanted)
    if missing or extra:
        raise InputError(where, f"does not fit this adapter task (missing {missing[:3]}, unexpected {extra[:3]})")
    with torch.no_grad():
        for n in wanted:
            if tuple(tensors[n].shape) != tuple(params[n].shape):
                raise InputError(where, f"tensor {n!r} has shape {tuple(tensors[n].shape)}, expected {tuple(params[n].shape)}")
            params[n].copy_(tensors[n])
