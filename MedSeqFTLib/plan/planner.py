"""A task's plan: spacing, patch, batch, normalisation and budget chosen from its fingerprint.

``make_plan`` follows nnU-Net v2's planner where it applies to a fine-tuning product:

* **target spacing**: nnU-Net's rule on the fingerprint (``plan.spacing``);
* **normalisation**: CT keeps the foundation model's own pre-training scale when M0 records one
  (its first layers learned that intensity scale; VoCo and our demo M0 use the HU window
  -175..250 -> [0, 1]); otherwise nnU-Net's CT scheme (clip to the foreground 0.5/99.5
  percentiles, z-score with the foreground mean/std). Every other modality: per-image z-score
  inside the body. The scheme is per channel (``data.normalisation``): ``preprocess.normalization``
  is the CT channels' scheme, the plan's ``channels`` list says each channel's and why; several CT
  channels share one set of statistics (the fingerprint's pooled ``ct_foreground``);
* **patch size**: shaped like the median image after resampling (in voxels), as large as the
  activation-memory budget allows for this backbone on this device, a multiple of the
  backbone's size divisor and at least its minimum; the activation bytes per voxel are
  measured on the backbone itself (autograd's saved tensors for one forward pass);
* **batch size**: 2 (nnU-Net's minimum, the paper's batch);
* **iterations** per stage: the workspace preset's schedule (``cpu_demo``, ``cpu``, ``paper``);
  not a plan value, so editing the workspace schedule still applies to every task.

Each value comes with a one-line reason; ``medseqft plan`` prints both. A plan is a set of
dotted configuration keys (``preprocess.spacing`` ...), applied by ``plan.overrides``.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np

from .spacing import target_spacing

__all__ = ["make_plan", "activation_bytes_per_voxel", "fit_patch", "memory_budget_bytes", "CPU_BUDGET_MB",
           "GPU_BUDGET_FRACTION", "MIN_PATCH"]

CPU_BUDGET_MB = 400.0  # activation memory of one training batch on a CPU: a step stays ~1 s on 2 cores
GPU_BUDGET_FRACTION = 0.5  # of the GPU's memory, for activations; weights, optimizer and cuDNN take the rest
MIN_PATCH = {"small_unet": 16, "swin_unetr": 64}  # Swin: instance norm at 1/32 needs >= 2 voxels
BATCH_SIZE = 2
_BYTES_CACHE: dict = {}


def activation_bytes_per_voxel(arch) -> float:
    """Bytes autograd keeps per input voxel of one sample in a training forward pass of ``arch``.

    Measured on the CPU at the backbone's minimum patch with a saved-tensors hook (what the
    backward pass needs; device-independent up to kernel workspaces). Cached per process.
    """
    import torch

    from ..models.registry import build_segnet

    key = (arch.name, int(arch.feature_size), int(arch.in_channels))
    if key not in _BYTES_CACHE:
        side = max(MIN_PATCH.get(arch.name, 16), 32)
        net = build_segnet(arch, 2)
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(torch.zeros(1, int(arch.in_channels), side, side, side))
        _BYTES_CACHE[key] = total[0] / side ** 3
    return _BYTES_CACHE[key]


def memory_budget_bytes(device, budget_mb: Optional[float] = None) -> tuple[float, str]:
    """Activation budget of one training batch and where it comes from."""
    if budget_mb is not None:
        return float(budget_mb) * 2 ** 20, f"recipe.memory_budget_mb = {budget_mb:g} MB"
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        total = torch.cuda.get_device_properties(device).total_memory
        return GPU_BUDGET_FRACTION * total, f"{GPU_BUDGET_FRACTION:.0%} of {total / 2**30:.0f} GiB on {device}"
    return CPU_BUDGET_MB * 2 ** 20, f"{CPU_BUDGET_MB:g} MB on the CPU (keeps a step near a second on 2 cores)"


def fit_patch(median_shape, divisor: int, max_voxels: float, min_side: int) -> tuple[int, ...]:
    """nnU-Net's patch rule: start at the median shape (rounded up to ``divisor``), then shrink
    the axis that is largest relative to the median shape by ``divisor`` until it fits."""
    div = int(divisor)
    min_side = int(math.ceil(int(min_side) / div)) * div
    shape = np.asarray([max(float(s), 1.0) for s in median_shape])
    patch = np.asarray([max(int(math.ceil(s / div)) * div, min_side) for s in shape])
    while np.prod(patch.astype(float)) > max_voxels:
        shrinkable = patch - div >= min_side
        if not shrinkable.any():
            break
        ratio = np.where(shrinkable, patch / shape, -np.inf)
        patch[int(np.argmax(ratio))] -= div
    return tuple(int(p) for p in patch)


def _channel_reason(modality: str, scheme: str, ct_reason: str) -> str:
    if modality == "CT":
        return ct_reason if scheme != "zscore" else "CT: per-image z-score inside the body"
    if modality == "PET":
        return ("PET: per-image z-score of the uptake inside the body (nnU-Net's default for a non-CT channel, "
                "as UNICON does): uptake scales differ between scans, the tumour-to-background contrast does not")
    if modality == "MR":
        return "MR: per-image z-score inside the body (MR intensities have no physical unit; nnU-Net's non-CT rule)"
    return f"{modality}: per-image z-score inside the body (nnU-Net's non-CT rule)"


def _normalisation(fingerprint: Mapping, foundation_meta: Optional[Mapping], channel_names: Optional[Mapping],
                   values: dict, reasons: dict, channels: list) -> None:
    """``preprocess.normalization`` (the scheme of the CT channels; every other channel is z-scored,
    ``data.normalisation``), ``ct_window``/``ct_stats``, and one ``channels`` entry per channel."""
    modality = fingerprint.get("modality", "other")
    n_channels = len(fingerprint["channels"])
    modalities = list(fingerprint.get("channel_modalities") or [modality] * n_channels)
    cts = [k for k, m in enumerate(modalities) if m == "CT"]
    fm_pre = (foundation_meta or {}).get("preprocess") or {}
    ct_reason = ""
    if cts and fm_pre.get("ct_window") and fm_pre.get("normalization", "window") == "window":
        window = [float(v) for v in fm_pre["ct_window"]]
        values["preprocess.normalization"], values["preprocess.ct_window"] = "window", window
        reasons["preprocess.normalization"] = (f"M0 was pre-trained on the HU window {window[0]:g}..{window[1]:g} -> [0, 1]; "
                                               "its first layers expect that scale")
        reasons["preprocess.ct_window"] = "M0's pre-training window (its metadata)"
        ct_reason = f"CT: M0's pre-training HU window {window[0]:g}..{window[1]:g} -> [0, 1]"
    elif cts:
        # several CT channels (contrast phases) share one HU scale: the fingerprint pools them
        pooled = len(cts) > 1 and fingerprint.get("ct_foreground") is not None
        fg = fingerprint["ct_foreground"] if pooled else fingerprint["channels"][cts[0]]["foreground"]
        stats = [fg["percentile_00_5"], fg["percentile_99_5"], fg["mean"], fg["std"]]
        if any(v is None for v in stats) or not stats[3]:
            raise ValueError("the fingerprint has no foreground intensities to normalise CT with")
        values["preprocess.normalization"] = "ct_zscore"
        values["preprocess.ct_stats"] = [round(float(v), 4) for v in stats]
        reasons["preprocess.normalization"] = ("nnU-Net's CT scheme: clip to the foreground 0.5/99.5 percentiles "
                                               f"({stats[0]:.0f}, {stats[1]:.0f} HU), z-score with mean {stats[2]:.1f}, "
                                               f"std {stats[3]:.1f}")
        ct_reason = "CT: " + reasons["preprocess.normalization"]
        if pooled:
            ct_reason += f", pooled over the {len(cts)} CT channels (one HU scale keeps the enhancement between phases)"
    else:
        values["preprocess.normalization"] = "zscore"
        reasons["preprocess.normalization"] = f"{modality}: per-image z-score inside the body (nnU-Net's non-CT rule)"
    names = channel_names or {}
    for k, m in enumerate(modalities):
        scheme = values["preprocess.normalization"] if m == "CT" else "zscore"
        channels.append({"index": k, "name": str(names.get(str(k), m)), "modality": m, "normalization": scheme,
                         "reason": _channel_reason(m, scheme, ct_reason)})
    if n_channels > 1:
        # 'medseqft plan' prints this one line per key: it names every channel's scheme
        per_channel = ", ".join(f"{c['index']} {c['name']} ({c['modality']}) {c['normalization']}" for c in channels)
        reasons["preprocess.normalization"] += f"; per channel: {per_channel}"


def make_plan(fingerprint: Mapping, cfg, device, foundation_meta: Optional[Mapping] = None,
              bytes_per_voxel: Optional[float] = None, channel_names: Optional[Mapping] = None) -> dict:
    """Plan one task.

    Args:
        fingerprint: ``plan.fingerprint.compute_fingerprint`` output.
        cfg: the workspace ``WorkspaceConfig`` (backbone, preset schedule, recipe).
        device: the torch device training will run on.
        foundation_meta: M0's metadata (its ``preprocess`` record), if any.
        bytes_per_voxel: the backbone's activation bytes per voxel if already measured
            (another task's plan); measured here otherwise.
        channel_names: the task's ``{"0": "CT", "1": "PET"}``, named in ``channels``.

    Returns:
        ``{"values": {dotted key: value}, "reasons": {dotted key: str}, "channels": [{"index",
        "name", "modality", "normalization", "reason"} per channel], "device": str,
        "median_shape": [x, y, z], "bytes_per_voxel": float}``.

    Raises:
        ValueError: a fingerprint with a CT channel but no foreground intensities.
    """
    from ..models.registry import size_divisor

    values, reasons, channels = {}, {}, []
    cases = fingerprint["cases"]
    spacing, why = target_spacing([c["spacing"] for c in cases], [c["size_after_crop"] for c in cases])
    spacing = [round(float(s), 5) for s in spacing]
    values["preprocess.spacing"], reasons["preprocess.spacing"] = spacing, why

    _normalisation(fingerprint, foundation_meta, channel_names, values, reasons, channels)
    shapes = [np.asarray(c["size_after_crop"], float) * np.asarray(c["spacing"], float) / np.asarray(spacing)
              for c in cases]
    median_shape = [float(v) for v in np.median(np.stack(shapes), axis=0)]
    per_voxel = float(bytes_per_voxel) if bytes_per_voxel else activation_bytes_per_voxel(cfg.arch)
    budget, budget_why = memory_budget_bytes(device, cfg.recipe.memory_budget_mb)
    min_side = MIN_PATCH.get(cfg.arch.name, 16)
    patch = fit_patch(median_shape, size_divisor(cfg.arch), budget / (per_voxel * BATCH_SIZE), min_side)
    values["preprocess.patch_size"] = list(patch)
    shape_txt = "x".join(f"{s:.0f}" for s in median_shape)
    reasons["preprocess.patch_size"] = (f"median image {shape_txt} voxels at that spacing; batch {BATCH_SIZE} x "
                                        f"{per_voxel:.0f} B/voxel of activations within {budget_why}; multiple of "
                                        f"{size_divisor(cfg.arch)}, at least {min_side}")
    for stage in ("fft", "kd_fft", "lora_kd"):
        values[f"retention.{stage}.batch_size"] = BATCH_SIZE
    reasons["retention.*.batch_size"] = f"{BATCH_SIZE}: nnU-Net's minimum and the paper's batch"
    reasons["retention.*.iterations"] = (f"the workspace preset's schedule (FFT/KD-FFT {cfg.retention.fft.iterations}, "
                                         f"LoRA-KD {cfg.retention.lora_kd.iterations})")
    return {"values": values, "reasons": reasons, "channels": channels, "device": str(device),
            "median_shape": median_shape, "bytes_per_voxel": per_voxel}
