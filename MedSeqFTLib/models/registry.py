"""Build backbones, segmentation networks and SSL heads from an ``ArchConfig``.

Backbones are listed in an explicit table (no folder scanning). Each backbone module
provides ``build_parts(arch) -> (encoder, decoder)``, ``out_channels(feature_size)``,
``SIZE_DIVISOR`` and ``LORA_TARGETS`` (the layer kinds LoRA goes into by default); the decoder
always ends with ``arch.feature_size`` channels.
"""

from __future__ import annotations

from types import ModuleType

from ..config import ArchConfig
from ..errors import InputError

__all__ = ["BACKBONES", "build_encoder", "build_decoder", "build_segnet", "build_ssl_head", "encoder_out_channels",
           "lora_target_modules", "lora_target_kinds", "size_divisor", "LORA_KINDS"]

# layer kind -> the torch class LoRA wraps (``retention.lora_targets`` names a "+"-joined subset)
LORA_KINDS = ("linear", "conv3d")


def _small_unet() -> ModuleType:
    from . import small_unet

    return small_unet


def _swin_unetr() -> ModuleType:
    from . import swin

    return swin


# name -> loader of the backbone module (imported lazily: torch and MONAI are heavy)
BACKBONES = {"small_unet": _small_unet, "swin_unetr": _swin_unetr}


def _backbone(arch: ArchConfig) -> ModuleType:
    if arch.name not in BACKBONES:
        raise InputError("arch.name", f"unknown backbone {arch.name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[arch.name]()


def build_encoder(arch: ArchConfig):
    """Encoder ``(B, C, X, Y, Z) -> list[Tensor]`` (fine to coarse) for ``arch``.

    Raises:
        InputError: unknown backbone name.
    """
    return _backbone(arch).build_parts(arch)[0]


def build_decoder(arch: ArchConfig):
    """Decoder ``list[Tensor] -> (B, arch.feature_size, X, Y, Z)`` for ``arch``."""
    return _backbone(arch).build_parts(arch)[1]


def build_segnet(arch: ArchConfig, n_classes: int, head_prior: float = 0.01):
    """``SegNet`` with a fresh ``Conv3d(feature_size, n_classes, 1)`` head.

    ``head_prior``: the head's biases start at this foreground probability per class
    (``segnet.init_head_prior``; ``RecipeConfig.head_prior``); 0 = PyTorch's default.

    Raises:
        InputError: unknown backbone or ``n_classes < 1``.
    """
    from torch import nn

    from .segnet import SegNet, init_head_prior

    if int(n_classes) < 1:
        raise InputError("n_classes", f"must be >= 1, got {n_classes}")
    module = _backbone(arch)
    encoder, decoder = module.build_parts(arch)
    head = init_head_prior(nn.Conv3d(int(arch.feature_size), int(n_classes), kernel_size=1), head_prior)
    return SegNet(encoder, decoder, head, module.SIZE_DIVISOR)


def build_ssl_head(arch: ArchConfig, pretext: str):
    """The SSL head of ``pretext`` (``"masked"`` or ``"voco"``) sized for ``arch``'s encoder.

    Raises:
        InputError: unknown pretext.
    """
    from .ssl import get_pretext

    return get_pretext(pretext).build_head(arch)


def encoder_out_channels(arch: ArchConfig) -> list[int]:
    """Channels of each encoder output, fine to coarse."""
    return list(_backbone(arch).out_channels(int(arch.feature_size)))


def size_divisor(arch: ArchConfig) -> int:
    """Every spatial input size must be a multiple of this (SwinUNETR 32, small U-Net 8)."""
    return int(_backbone(arch).SIZE_DIVISOR)


def lora_target_kinds(arch: ArchConfig, setting: str = "auto") -> tuple[str, ...]:
    """The layer kinds (``LORA_KINDS``) LoRA goes into for ``retention.lora_targets == setting``.

    ``"auto"`` is the backbone's own default (``LORA_TARGETS`` of its module: ``("linear",)`` for
    SwinUNETR, the paper's "every linear layer"; ``("conv3d",)`` for the small U-Net, which has
    no Linear layer); otherwise the ``"+"``-joined kinds of ``setting``.

    Raises:
        InputError: an unknown kind.
    """
    if setting == "auto":
        return tuple(_backbone(arch).LORA_TARGETS)
    kinds = tuple(k for k in str(setting).split("+") if k)
    bad = [k for k in kinds if k not in LORA_KINDS]
    if bad or not kinds:
        raise InputError("retention.lora_targets", f"unknown layer kind(s) {bad or [setting]}; choose from "
                                                   f"{list(LORA_KINDS)} joined by '+', or 'auto'")
    return kinds


def lora_target_modules(encoder, kinds=LORA_KINDS) -> list[str]:
    """Full names of every layer of the given ``kinds`` inside ``encoder`` (module order).

    Args:
        encoder: any ``nn.Module``.
        kinds: subset of ``LORA_KINDS`` (``"linear"``: ``nn.Linear``; ``"conv3d"``: ``nn.Conv3d``);
            default both.

    Names are relative to ``encoder``; pass them to PEFT's ``LoraConfig(target_modules=...)``
    (a list means exact-name matching). Conv3d targets include 1x1x1 convolutions, which PEFT
    0.21.2 cannot merge: callers that merge must handle those.

    Raises:
        ValueError: an unknown kind.
    """
    from torch import nn

    classes = {"linear": nn.Linear, "conv3d": nn.Conv3d}
    bad = [k for k in kinds if k not in classes]
    if bad:
        raise ValueError(f"unknown LoRA layer kind(s) {bad}; choose from {list(classes)}")
    wanted = tuple(classes[k] for k in kinds)
    return [name for name, mod in encoder.named_modules() if isinstance(mod, wanted) and name]
