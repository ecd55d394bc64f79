"""Mixed precision for a training stage: autocast + gradient scaling on CUDA, fp32 elsewhere.

``Precision("auto", device)`` picks bf16 on GPUs that support it (no scaler needed), fp16 with
a ``torch.amp.GradScaler`` on older GPUs, and plain fp32 on the CPU and MPS. ``step`` unscales
(fp16), clips the gradient norm and steps the optimizer, skipping steps with inf/nan gradients
as the scaler does.
"""

from __future__ import annotations

import contextlib

__all__ = ["Precision"]


class Precision:
    """Autocast, backward and optimizer step for one stage.

    Args:
        mode: ``RecipeConfig.amp``: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"off"``.
        device: the training device; anything but CUDA runs fp32.

    Attributes:
        dtype: ``torch.bfloat16``, ``torch.float16`` or ``None`` (fp32).
        name: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (recorded in the stage log).
    """

    def __init__(self, mode: str, device) -> None:
        import torch

        self.device_type = getattr(device, "type", str(device))
        self.dtype = None
        if self.device_type == "cuda" and mode != "off":
            if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
                self.dtype = torch.bfloat16
            else:
                self.dtype = torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None
        self.name = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        """Context manager for the forward pass and the loss."""
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss, retain_graph: bool = False) -> None:
        """Back-propagate ``loss`` (scaled with fp16); ``retain_graph`` for a second loss on a shared graph."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(retain_graph=retain_graph)

    def step(self, optimizer, params, grad_clip: float, update: bool = True) -> None:
        """Unscale (fp16), clip the gradient norm to ``grad_clip`` (0: no clipping), step.

        ``update=False`` leaves the scaler's scale as it is: a stage with several optimisers
        steps each of them, then calls ``update()`` once (PyTorch's multi-optimiser recipe).
        """
        import torch

        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], float(grad_clip))
        if self.scaler is not None:
            self.scaler.step(optimizer)
            if update:
                self.scaler.update()
        else:
            optimizer.step()

    def update(self) -> None:
        """Adjust the fp16 loss scale after every optimiser of an iteration stepped (no-op otherwise)."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
