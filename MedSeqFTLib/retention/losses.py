"""The two losses of K&G RFT: segmentation (Dice + CE) and feature distillation (MSE).

The segmentation loss is MONAI's ``DiceCELoss`` (softmax over classes, integer labels turned
one-hot), the paper's "Dice + CE". The distillation loss is the mean squared error between
encoder outputs, averaged over the distilled scales so that its size does not grow with the
number of scales.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import InputError

__all__ = ["segmentation_loss", "distillation_loss", "resolve_scales"]


def segmentation_loss():
    """MONAI ``DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, batch=True)``.

    The Dice term is nnU-Net's: foreground classes only, pooled over the batch, so patches
    without a class (common for small targets such as tumours) do not reward an empty
    prediction, and the near-perfect background Dice does not dilute the loss.

    Call it as ``loss(logits (B, n_classes, X, Y, Z), labels (B, 1, X, Y, Z))``; labels are
    integer class values (any dtype), background 0.
    """
    from monai.losses import DiceCELoss

    return DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, batch=True)


def resolve_scales(n_outputs: int, distil_scales: Optional[Sequence[int]]) -> list[int]:
    """Encoder output indices to distil: all of them when ``distil_scales`` is ``None``.

    Args:
        n_outputs: number of outputs the encoder returns.
        distil_scales: ``RetentionConfig.distil_scales``.

    Raises:
        InputError: an index is not an output of this encoder.
    """
    if distil_scales is None:
        return list(range(n_outputs))
    bad = [i for i in distil_scales if not 0 <= int(i) < n_outputs]
    if bad:
        raise InputError("retention.distil_scales",
                         f"indices {bad} do not exist; this encoder has outputs 0..{n_outputs - 1}")
    return sorted({int(i) for i in distil_scales})


def distillation_loss(student, teacher, scales: Sequence[int]):
    """Mean over ``scales`` of ``mse(student[i], teacher[i])``.

    Args:
        student: encoder outputs, list of (B, C_i, X_i, Y_i, Z_i) tensors (with gradient).
        teacher: the same shapes, from the frozen target encoder (no gradient needed).
        scales: indices into both lists.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: the two encoders' outputs at a distilled scale differ in shape.
    """
    import torch.nn.functional as F

    total = 0.0
    for i in scales:
        s, t = student[i], teacher[i]
        if s.shape != t.shape:
            raise ValueError(f"encoder output {i}: student shape {tuple(s.shape)} != teacher shape {tuple(t.shape)}")
        total = total + F.mse_loss(s, t.detach())
    return total / len(scales)
