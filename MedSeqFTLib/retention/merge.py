"""LoRA injection into an encoder and merging it back: W' = W + scale * B A.

``add_lora`` puts PEFT LoRA layers (rank r, ``lora_alpha``) into every layer of the chosen
kinds of an encoder (``nn.Linear`` and/or ``nn.Conv3d``: ``models.registry.lora_target_modules``;
K&G RFT takes the kinds from ``retention.lora_targets`` via ``registry.lora_target_kinds``:
every Linear of SwinUNETR, every Conv3d of the small U-Net) and freezes everything else.
``merge_lora`` folds each adapter into its base weight and puts the plain base layers back, so
the result has exactly the original parameter names and shapes.

PEFT 0.21.2 cannot merge LoRA on a Conv3d whose kernel starts with 1x1 (e.g. the 1x1x1
residual projections of MONAI's ``UnetResBlock``): ``_ConvNd.get_delta_weight`` takes its
Conv2d-1x1 shortcut for them (it tests ``weight.size()[2:4] == (1, 1)``) and raises a size
mismatch (peft #3768, fixed by #3777 after 0.21.2). For exactly those layers we compute the
delta ourselves; every other layer goes through PEFT's own ``merge``.
"""

from __future__ import annotations

from typing import Optional, Sequence

__all__ = ["add_lora", "merge_lora", "lora_parameters", "needs_own_merge", "own_delta_weight"]

ADAPTER = "default"


def add_lora(encoder, rank: int, alpha: float, targets: Optional[list] = None,
             kinds: Sequence[str] = ("linear", "conv3d")):
    """Inject LoRA (PEFT) into ``encoder`` in place and make only the LoRA weights trainable.

    Args:
        encoder: a plain ``nn.Module`` (the encoder E_{t-1}, already a copy: it is modified).
        rank: LoRA rank r.
        alpha: ``lora_alpha``; the adapter output is scaled by ``alpha / rank``.
        targets: full module names to wrap; default every layer of ``kinds``.
        kinds: layer kinds wrapped when ``targets`` is ``None`` (``"linear"``, ``"conv3d"``;
            ``models.registry.lora_target_kinds`` gives a backbone's setting).

    Returns:
        The same module object, now holding ``lora_A``/``lora_B`` weights (B starts at zero,
        so the output is unchanged until training).

    Raises:
        ValueError: ``encoder`` has no layer of ``kinds`` (or ``targets`` is empty).
    """
    from peft import LoraConfig, inject_adapter_in_model

    from ..models.registry import lora_target_modules

    targets = list(targets) if targets is not None else lora_target_modules(encoder, tuple(kinds))
    if not targets:
        raise ValueError(f"encoder has no layer of kind(s) {list(kinds)} to put LoRA into")
    cfg = LoraConfig(target_modules=targets, r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, bias="none")
    encoder = inject_adapter_in_model(cfg, encoder, adapter_name=ADAPTER)
    for name, p in encoder.named_parameters():
        p.requires_grad_("lora_" in name)
    return encoder


def lora_parameters(encoder) -> dict:
    """``{name: parameter}`` of the LoRA weights inside ``encoder`` (the only trainable ones)."""
    return {n: p for n, p in encoder.named_parameters() if "lora_" in n}


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [(name, mod) for name, mod in model.named_modules() if isinstance(mod, LoraLayer)]


def needs_own_merge(layer) -> bool:
    """True for the layers PEFT 0.21.2's merge gets wrong: Conv3d with a kernel starting 1x1."""
    from torch import nn

    base = layer.get_base_layer()
    return isinstance(base, nn.Conv3d) and tuple(base.weight.shape[2:4]) == (1, 1)


def own_delta_weight(layer, adapter: str = ADAPTER):
    """``scale * B A`` for a LoRA conv layer, shaped like its base weight.

    PEFT's conv LoRA is ``A`` = a conv with the base kernel (r, C_in, *k) followed by ``B`` =
    a 1x1x1 conv (C_out, r, 1, 1, 1); their composition is one conv with weight
    ``sum_r B[o, r] A[r, i, *k]``, which holds for any kernel (groups = 1).

    Returns:
        Tensor (C_out, C_in, *k) in the base weight's dtype.
    """
    import torch

    # half precision is merged in float32 (as PEFT does); float32/float64 stay as they are
    dtype = torch.promote_types(layer.lora_A[adapter].weight.dtype, torch.float32)
    weight_a = layer.lora_A[adapter].weight.to(dtype)
    weight_b = layer.lora_B[adapter].weight.to(dtype).flatten(1)  # (C_out, r)
    delta = torch.einsum("or,r...->o...", weight_b, weight_a) * layer.scaling[adapter]
    return delta.to(layer.get_base_layer().weight.dtype)


def merge_lora(model):
    """Fold every LoRA adapter of ``model`` into its base weight and unwrap the layers.

    Args:
        model: a module that went through ``add_lora`` (modified in place).

    Returns:
        The same module with plain ``nn.Linear`` / ``nn.Conv3d`` layers again: same
        parameter names and shapes as before ``add_lora``, all parameters trainable.

    Raises:
        NotImplementedError: a grouped convolution (PEFT cannot merge those).
    """
    import torch

    for name, layer in _lora_layers(model):
        base = layer.get_base_layer()
        if needs_own_merge(layer):
            if base.groups != 1:
                raise NotImplementedError(f"cannot merge LoRA into grouped convolution {name}")
            with torch.no_grad():
                base.weight += own_delta_weight(layer)
        else:
            layer.merge(adapter_names=[ADAPTER])
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, base)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
