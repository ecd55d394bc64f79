"""Which torch device a command runs on: one set of rules for every command.

``--device`` accepts ``auto`` (CUDA, then MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` and
``mps``; anything unknown or unavailable is bad input (exit 2), never a CUDA traceback later.
"""

from __future__ import annotations

from typing import Optional

from .errors import InputError

__all__ = ["resolve_device"]


def resolve_device(device: Optional[str]):
    """``auto`` -> CUDA if available, then MPS, else CPU; otherwise ``torch.device(device)``.

    Raises:
        InputError: unparsable device, or a CUDA / MPS device that is not available.
    """
    import torch

    name = (device or "auto").strip()
    mps_ok = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError("--device", f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", f"{name} requested but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError("--device", f"{name} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps" and not mps_ok:
        raise InputError("--device", "mps requested but not available; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError("--device", f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev
