"""Validated configuration dataclasses, saved in ``workspace.json`` and in model metadata.

Each dataclass checks itself in ``__post_init__`` (PEFT's ``LoraConfig`` habit) and
round-trips through ``to_dict`` / ``from_dict``; unknown keys are refused so a typo in a
hand-edited ``workspace.json`` is reported instead of silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from .adapters.config import AdapterConfig
from .errors import InputError

__all__ = [
    "ArchConfig",
    "PreprocessConfig",
    "StageConfig",
    "RetentionConfig",
    "SelectionConfig",
    "RecipeConfig",
    "WorkspaceConfig",
]

ARCH_NAMES = ("small_unet", "swin_unetr")
NORMALIZATIONS = ("window", "ct_zscore", "zscore")
SCHEDULES = ("poly", "cosine", "constant")
AMP_MODES = ("auto", "off", "bf16", "fp16")
KEEP_LARGEST = ("auto", "on", "off")
KD_UPDATES = ("independent", "joint")
LORA_TARGETS = ("auto", "linear", "conv3d", "linear+conv3d")


def _check(cond: bool, where: str, problem: str) -> None:
    if not cond:
        raise InputError(where, problem)


def _from_dict(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise InputError(where, f"expected an object for {cls.__name__}, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InputError(where, f"unknown {cls.__name__} key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        sub = _NESTED.get((cls.__name__, key))
        if sub is not None and value is not None:
            value = _from_dict(sub, value, f"{where}.{key}")
        elif isinstance(value, list) and key in _TUPLE_FIELDS:
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(where, str(exc)) from None


class _Serialisable:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config"):
        return _from_dict(cls, data, where)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass
class ArchConfig(_Serialisable):
    """Which backbone and how big.

    Attributes:
        name: ``"small_unet"`` (CPU-friendly CNN) or ``"swin_unetr"`` (VoCo-compatible MONAI
            SwinUNETR, ``use_v2=True``).
        in_channels: image channels the encoder takes.
        feature_size: base width (SwinUNETR: 48 = VoCo-B, 96 = L, 192 = H).
        legacy_patch_merging: SwinUNETR only; reproduce the pre-MONAI-1.5 PatchMerging voxel
            order that every published Swin SSL checkpoint was trained with.
    """

    name: str = "small_unet"
    in_channels: int = 1
    feature_size: int = 8
    legacy_patch_merging: bool = True

    def __post_init__(self):
        _check(self.name in ARCH_NAMES, "arch.name", f"unknown backbone {self.name!r}; choose one of {list(ARCH_NAMES)}")
        _check(int(self.in_channels) >= 1, "arch.in_channels", f"must be >= 1, got {self.in_channels}")
        _check(int(self.feature_size) >= 1, "arch.feature_size", f"must be >= 1, got {self.feature_size}")
        if self.name == "swin_unetr":
            _check(self.feature_size % 12 == 0, "arch.feature_size", f"SwinUNETR needs a multiple of 12, got {self.feature_size}")


@dataclass
class PreprocessConfig(_Serialisable):
    """How a case becomes network input.

    Attributes:
        spacing: target voxel spacing in mm (x, y, z) after reorientation to RAS.
        ct_window: HU window mapped to [0, 1] for CT with ``normalization="window"``.
        patch_size: training patch (x, y, z) in voxels.
        crop_foreground: crop each case to the body (CT: above -500 HU; MR: above 0) before the
            intensity step, with a 2-voxel margin.
        pos_fraction: share of training patches centred on a voxel of a class chosen uniformly
            among the classes present in the case (nnU-Net's class-aware oversampling); the
            others are placed at random.
        normalization: ``"window"`` (CT: ``ct_window`` -> [0, 1]; others z-score),
            ``"ct_zscore"`` (CT: clip to ``ct_stats`` low/high, then (x - mean) / std, nnU-Net's
            CT scheme) or ``"zscore"`` (per-image z-score inside the body, every modality).
        ct_stats: ``[low, high, mean, std]`` of the dataset's foreground HU (the 0.5/99.5
            percentiles, mean and std), needed by ``"ct_zscore"``.
    """

    spacing: tuple = (1.5, 1.5, 1.5)
    ct_window: tuple = (-175.0, 250.0)
    patch_size: tuple = (96, 96, 96)
    crop_foreground: bool = True
    pos_fraction: float = 0.5
    normalization: str = "window"
    ct_stats: Optional[tuple] = None

    def __post_init__(self):
        _check(self.normalization in NORMALIZATIONS, "preprocess.normalization",
               f"must be one of {list(NORMALIZATIONS)}, got {self.normalization!r}")
        if self.ct_stats is not None:
            _check(len(self.ct_stats) == 4 and float(self.ct_stats[0]) < float(self.ct_stats[1]) and float(self.ct_stats[3]) > 0,
                   "preprocess.ct_stats", f"needs [low, high, mean, std] with low < high and std > 0, got {self.ct_stats}")
            self.ct_stats = tuple(float(v) for v in self.ct_stats)
        _check(self.normalization != "ct_zscore" or self.ct_stats is not None, "preprocess.ct_stats",
               "normalization 'ct_zscore' needs the dataset's [low, high, mean, std] (from the task's fingerprint)")
        _check(len(self.spacing) == 3 and all(float(s) > 0 for s in self.spacing), "preprocess.spacing", f"needs 3 positive numbers, got {self.spacing}")
        _check(len(self.ct_window) == 2 and float(self.ct_window[0]) < float(self.ct_window[1]), "preprocess.ct_window", f"needs [low, high] with low < high, got {self.ct_window}")
        _check(len(self.patch_size) == 3 and all(int(p) >= 8 for p in self.patch_size), "preprocess.patch_size", f"needs 3 integers >= 8, got {self.patch_size}")
        _check(0.0 <= float(self.pos_fraction) <= 1.0, "preprocess.pos_fraction", f"must lie in [0, 1], got {self.pos_fraction}")
        self.spacing = tuple(float(s) for s in self.spacing)
        self.ct_window = tuple(float(w) for w in self.ct_window)
        self.patch_size = tuple(int(p) for p in self.patch_size)


@dataclass
class RecipeConfig(_Serialisable):
    """How every training stage optimises and how inference runs (one recipe for all stages).

    Attributes:
        schedule: learning-rate decay over a stage: ``"poly"`` (nnU-Net: lr * (1 - t/T)^0.9),
            ``"cosine"`` (after ``warmup_fraction`` of linear warm-up) or ``"constant"``.
        poly_exponent: exponent of the poly decay.
        warmup_fraction: share of a stage's steps spent warming up linearly (cosine and poly).
        grad_clip: clip the gradient norm to this (nnU-Net: 12); 0 turns clipping off.
        amp: mixed precision on CUDA: ``"auto"`` (bf16 where supported, else fp16 with a
            gradient scaler), ``"bf16"``, ``"fp16"`` or ``"off"``; the CPU always runs fp32.
        augment: nnU-Net's default augmentation (``data.augment``) on task patches.
        deep_supervision: auxiliary Dice + CE losses on the decoder's coarser outputs where
            the decoder supports it (the small U-Net; not SwinUNETR's decoder).
        elastic: add elastic deformation to the augmentation.
        workers: data-loader worker processes; ``None`` = 0 on the CPU (the cores train),
            ``min(8, cpus - 1)`` on CUDA.
        tta_mirror: average predictions over the 8 mirrorings at inference; ``None`` = on CUDA
            only (it costs 8x the time).
        sw_overlap: sliding-window overlap at inference.
        keep_largest: keep only the largest connected component of each class at inference:
            ``"auto"`` = per class where it raised Dice on the training cases after training.
        memory_budget_mb: activation memory of one training batch that the plan sizes the
            patch for; ``None`` = half the GPU's memory, or 400 MB on the CPU.
        head_prior: a fresh segmentation head (and each deep-supervision head) starts with
            biases that predict every foreground class with this probability
            (``models.segnet.init_head_prior``); 0 = PyTorch's default initialisation.
    """

    schedule: str = "poly"
    poly_exponent: float = 0.9
    warmup_fraction: float = 0.0
    grad_clip: float = 12.0
    amp: str = "auto"
    augment: bool = True
    deep_supervision: bool = True
    elastic: bool = False
    workers: Optional[int] = None
    tta_mirror: Optional[bool] = None
    sw_overlap: float = 0.5
    keep_largest: str = "auto"
    memory_budget_mb: Optional[float] = None
    head_prior: float = 0.01

    def __post_init__(self):
        for name in ("head_prior", "poly_exponent", "warmup_fraction", "grad_clip", "sw_overlap", "memory_budget_mb", "workers"):
            value = getattr(self, name)
            if value is None and name in ("memory_budget_mb", "workers"):
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if name == "workers":
                ok = isinstance(value, int) and not isinstance(value, bool)
            _check(ok, f"recipe.{name}", f"must be {'an integer' if name == 'workers' else 'a number'}, got {value!r}")
        _check(self.schedule in SCHEDULES, "recipe.schedule", f"must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        _check(float(self.poly_exponent) > 0, "recipe.poly_exponent", f"must be > 0, got {self.poly_exponent}")
        _check(0.0 <= float(self.warmup_fraction) < 1.0, "recipe.warmup_fraction", f"must lie in [0, 1), got {self.warmup_fraction}")
        _check(float(self.grad_clip) >= 0, "recipe.grad_clip", f"must be >= 0, got {self.grad_clip}")
        _check(0.0 <= float(self.head_prior) < 0.5, "recipe.head_prior", f"must lie in [0, 0.5), got {self.head_prior}")
        _check(self.amp in AMP_MODES, "recipe.amp", f"must be one of {list(AMP_MODES)}, got {self.amp!r}")
        _check(self.workers is None or int(self.workers) >= 0, "recipe.workers", f"must be >= 0 or null, got {self.workers}")
        _check(0.0 <= float(self.sw_overlap) < 1.0, "recipe.sw_overlap", f"must lie in [0, 1), got {self.sw_overlap}")
        _check(self.keep_largest in KEEP_LARGEST, "recipe.keep_largest", f"must be one of {list(KEEP_LARGEST)}, got {self.keep_largest!r}")
        for name in ("augment", "elastic", "deep_supervision"):
            _check(isinstance(getattr(self, name), bool), f"recipe.{name}", f"must be true or false, got {getattr(self, name)!r}")
        _check(self.memory_budget_mb is None or float(self.memory_budget_mb) > 0, "recipe.memory_budget_mb",
               f"must be > 0 or null, got {self.memory_budget_mb}")
        _check(self.tta_mirror is None or isinstance(self.tta_mirror, bool), "recipe.tta_mirror",
               f"must be true, false or null, got {self.tta_mirror!r}")

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of the base learning rate at ``step`` (0-based) of a ``total``-step stage."""
        import math

        total = max(int(total), 1)
        warm = int(round(float(self.warmup_fraction) * total))
        if step < warm:
            return (step + 1) / warm
        if self.schedule == "constant":
            return 1.0
        t = (step - warm) / max(total - warm, 1)
        if self.schedule == "poly":
            return (1.0 - t) ** float(self.poly_exponent)
        return 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass
class StageConfig(_Serialisable):
    """One training stage: AdamW for ``iterations`` steps of ``batch_size`` patches."""

    iterations: int = 25000
    lr: float = 3e-4
    batch_size: int = 2
    weight_decay: float = 1e-5

    def __post_init__(self):
        _check(int(self.iterations) >= 1, "stage.iterations", f"must be >= 1, got {self.iterations}")
        _check(float(self.lr) > 0, "stage.lr", f"must be > 0, got {self.lr}")
        _check(int(self.batch_size) >= 1, "stage.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(float(self.weight_decay) >= 0, "stage.weight_decay", f"must be >= 0, got {self.weight_decay}")


@dataclass
class RetentionConfig(_Serialisable):
    """K&G RFT settings (paper defaults for the VoCo backbone).

    Attributes:
        fft: task-1 full fine-tuning (paper: 25,000 iterations, lr 3e-4, batch 2).
        kd_fft: task t>1 KD-based FFT, same budget as ``fft``.
        kd_weight: weight of the MSE distillation loss on buffer cases.
        distil_scales: indices of encoder outputs to distil; ``None`` = all scales.
        lora_kd: LoRA-based KD (paper: 5,000 iterations, lr 3e-5).
        lora_rank: LoRA rank r (paper: 2). ``lora_alpha`` defaults to the rank (scale 1).
        enabled: ``False`` turns every task into plain sequential FFT (Seq-FT).
        lora_stage: ``False`` skips LoRA-KD and merge on every task (E_t = E_{t-mid}): "Seq-FT +
            buffer KD"; task 1 is then plain FFT.
        kd_batch_size: buffer patches per KD-FFT step; ``None`` = half of ``kd_fft.batch_size``
            (at least 1), which keeps the distillation overhead small.
        kd_every: distil on every n-th KD-FFT step only (1 = every step, the paper's reading);
            n = 4 brings the KD-FFT step-time overhead from +42% to +12% (SwinUNETR-B, 160x160x32,
            batch 2, H100; see docs/benchmarks.md).
        kd_update: how KD-FFT applies its two losses. ``"independent"`` (the paper: "each
            updating only its corresponding parameters"): the segmentation loss steps encoder +
            decoder + head with one AdamW, the distillation loss steps the encoder with a second
            AdamW of its own (own moments; learning rate ``kd_fft.lr * kd_weight``, since Adam
            ignores a constant loss weight; no second weight decay). ``"joint"``: one AdamW step
            on ``seg + kd_weight * kd`` (the earlier behaviour).
        first_task_lora: task 1 runs FFT from M0, then LoRA-KD of the fine-tuned encoder into
            M0's encoder and the merge, as every later task (the paper, Sec. III-B), so that
            E_1 - E_0 is low-rank. Needs ``enabled`` and ``lora_stage``; ``False``: task 1 is
            plain FFT (E_1 = the fine-tuned encoder).
        lora_targets: the layers LoRA goes into: ``"auto"`` (the backbone's default: every
            ``nn.Linear`` of SwinUNETR, as in the paper; every ``nn.Conv3d`` of the small U-Net,
            which has no Linear), ``"linear"``, ``"conv3d"`` or ``"linear+conv3d"``.
    """

    fft: StageConfig = field(default_factory=lambda: StageConfig(25000, 3e-4))
    kd_fft: StageConfig = field(default_factory=lambda: StageConfig(25000, 3e-4))
    kd_weight: float = 1.0
    distil_scales: Optional[list] = None
    lora_kd: StageConfig = field(default_factory=lambda: StageConfig(5000, 3e-5))
    lora_rank: int = 2
    lora_alpha: Optional[float] = None
    enabled: bool = True
    lora_stage: bool = True
    kd_batch_size: Optional[int] = None
    kd_every: int = 1
    kd_update: str = "independent"
    first_task_lora: bool = True
    lora_targets: str = "auto"

    def __post_init__(self):
        _check(int(self.kd_every) >= 1, "retention.kd_every", f"must be >= 1, got {self.kd_every}")
        _check(self.kd_update in KD_UPDATES, "retention.kd_update",
               f"must be one of {list(KD_UPDATES)}, got {self.kd_update!r}")
        _check(self.lora_targets in LORA_TARGETS, "retention.lora_targets",
               f"must be one of {list(LORA_TARGETS)}, got {self.lora_targets!r}")
        for name in ("enabled", "lora_stage", "first_task_lora"):
            _check(isinstance(getattr(self, name), bool), f"retention.{name}",
                   f"must be true or false, got {getattr(self, name)!r}")
        _check(self.kd_batch_size is None or int(self.kd_batch_size) >= 1, "retention.kd_batch_size",
               f"must be >= 1 or null, got {self.kd_batch_size}")
        _check(float(self.kd_weight) >= 0, "retention.kd_weight", f"must be >= 0, got {self.kd_weight}")
        _check(int(self.lora_rank) >= 1, "retention.lora_rank", f"must be >= 1, got {self.lora_rank}")
        if self.distil_scales is not None:
            _check(all(isinstance(i, int) and i >= 0 for i in self.distil_scales) and len(self.distil_scales) > 0,
                   "retention.distil_scales", f"needs a non-empty list of encoder output indices or null, got {self.distil_scales}")

    @property
    def kd_batch(self) -> int:
        """Buffer patches per KD-FFT step (``kd_batch_size`` or half the task batch)."""
        if self.kd_batch_size is not None:
            return int(self.kd_batch_size)
        return max(1, int(self.kd_fft.batch_size) // 2)

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha) if self.lora_alpha is not None else float(self.lora_rank)

    def lora_on_first_task(self) -> bool:
        """Whether task 1 runs LoRA-KD + merge after its FFT (``first_task_lora`` with retention and the LoRA stage on)."""
        return bool(self.enabled and self.lora_stage and self.first_task_lora)


@dataclass
class SelectionConfig(_Serialisable):
    """Buffer selection.

    Attributes:
        method: ``"mds"`` (lowest SSL loss of M0) or ``"random"`` (the paper's ablation).
        k: buffer cases per task; ``None`` = 20% of the task's training cases (at least 1).
        runs: stochastic SSL-loss evaluations per case (paper: 1000).
        adaptive: stop sampling a case once its mean is confidently on one side of the K-th
            boundary.
        views_per_batch: stochastic views evaluated in one batched forward pass.
        pretext: SSL pretext used for scoring; ``None`` = the one M0 was trained with.
    """

    method: str = "mds"
    k: Optional[int] = None
    runs: int = 1000
    adaptive: bool = True
    views_per_batch: int = 8
    pretext: Optional[str] = None

    def __post_init__(self):
        _check(self.method in ("mds", "random"), "selection.method", f"must be 'mds' or 'random', got {self.method!r}")
        _check(self.k is None or int(self.k) >= 1, "selection.k", f"must be >= 1, got {self.k}")
        _check(int(self.runs) >= 1, "selection.runs", f"must be >= 1, got {self.runs}")
        _check(int(self.views_per_batch) >= 1, "selection.views_per_batch", f"must be >= 1, got {self.views_per_batch}")

    def k_for(self, n_train: int) -> int:
        if self.k is not None:
            return min(int(self.k), n_train)
        return max(1, round(0.2 * n_train))


@dataclass
class WorkspaceConfig(_Serialisable):
    """Everything that decides what a refinement sequence computes."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    seed: int = 0
    checkpoint_every_s: float = 180.0

    def __post_init__(self):
        _check(float(self.checkpoint_every_s) > 0, "checkpoint_every_s", f"must be > 0, got {self.checkpoint_every_s}")


_NESTED = {
    ("WorkspaceConfig", "arch"): ArchConfig,
    ("WorkspaceConfig", "preprocess"): PreprocessConfig,
    ("WorkspaceConfig", "retention"): RetentionConfig,
    ("WorkspaceConfig", "selection"): SelectionConfig,
    ("WorkspaceConfig", "recipe"): RecipeConfig,
    ("WorkspaceConfig", "adapter"): AdapterConfig,
    ("RetentionConfig", "fft"): StageConfig,
    ("RetentionConfig", "kd_fft"): StageConfig,
    ("RetentionConfig", "lora_kd"): StageConfig,
}
_TUPLE_FIELDS = {"spacing", "ct_window", "patch_size", "ct_stats"}
