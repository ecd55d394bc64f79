"""Moving sampler batches onto the training device (numpy or torch in, float/long tensors out)."""

from __future__ import annotations

from typing import Callable, Protocol

__all__ = ["BatchSource", "SamplerFactory", "to_device"]


class BatchSource(Protocol):
    """Anything with ``next_batch() -> {"image": (B, C, X, Y, Z), "label": (B, 1, X, Y, Z) or None}``
    (``data.sampling.PatchSampler`` is one)."""

    def next_batch(self) -> dict: ...


# factory(seed) -> BatchSource; stages call it with a seed derived from (stage seed, start step)
SamplerFactory = Callable[[int], BatchSource]


def to_device(batch: dict, device, need_label: bool = True):
    """``(image float32 (B, C, X, Y, Z), label int64 (B, 1, X, Y, Z) or None)`` on ``device``.

    Raises:
        ValueError: ``need_label`` and the batch has no label.
    """
    import torch

    image = torch.as_tensor(batch["image"]).to(device=device, dtype=torch.float32, non_blocking=True)
    label = batch.get("label")
    if label is None:
        if need_label:
            raise ValueError("a segmentation batch needs labels")
        return image, None
    return image, torch.as_tensor(label).to(device=device, dtype=torch.long, non_blocking=True)
