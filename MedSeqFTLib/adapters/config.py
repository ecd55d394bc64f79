"""Settings of the ``adapter`` task mode (FSEFT's few-shot adapters; see docs/fewshot.md).

Two levels, as PEFT keeps a config apart from the model surgery:

* ``AdapterConfig`` (``WorkspaceConfig.adapter``, settable with ``medseqft plan --set adapter.*``):
  how adapter tasks train (steps, learning rate, LoRA rank, the transductive size prior);
* ``TaskAdapter`` (``task.json`` ``"adapter"``): what one task is (method, shots, support cases,
  transductive or not), fixed at ``add-task``.

Methods (everything not named is frozen; the task stores only what it trains):

* ``linear_probe``: a 1x1x1 classifier on the frozen base's last feature map;
* ``spatial_adapter`` / ``spatial_adapter_1x1``: ``x + conv(ReLU(conv(x)))`` (kernel 3 or 1, last
  conv zero-initialised) on that feature map, then the classifier;
* ``bitfit``: every bias of the encoder (and of the base decoder) plus the classifier;
* ``lora``: unmerged PEFT LoRA (FSEFT: rank 4 on the attention ``qkv`` of SwinUNETR; every
  ``Conv3d`` of the small U-Net, a CNN without attention) plus the classifier;
* ``decoder``: the decoder (from the base's, when it has one) plus the classifier;
* ``full``: everything (full fine-tuning, the few-shot benchmark's reference; not parameter-efficient).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from ..errors import InputError

__all__ = ["AdapterConfig", "TaskAdapter", "METHODS", "BLACK_BOX", "MODES", "DEFAULT_LR"]

METHODS = ("linear_probe", "spatial_adapter", "spatial_adapter_1x1", "bitfit", "lora", "decoder", "full")
BLACK_BOX = ("linear_probe", "spatial_adapter", "spatial_adapter_1x1")  # see only the frozen base's features
MODES = ("kg_rft", "adapter")
# FSEFT's settings (configs.py): linear probe 1e-2, LoRA 1e-3 (1e-4 once the decoder is tuned too);
# the black-box spatial adapter trains like the probe. Full/decoder tuning: the CPU presets' FFT rate.
DEFAULT_LR = {"linear_probe": 1e-2, "spatial_adapter": 1e-2, "spatial_adapter_1x1": 1e-2, "bitfit": 1e-3,
              "lora": 1e-3, "decoder": 1e-3, "full": 1e-3}


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise InputError(key, problem)


@dataclass
class AdapterConfig:
    """How adapter-mode tasks train.

    Attributes:
        iterations: optimizer steps of the adaptation stage.
        lr: AdamW learning rate; ``None`` = the method's default (``DEFAULT_LR``, FSEFT's).
        batch_size: support patches per step.
        weight_decay: AdamW weight decay.
        lora_rank: LoRA rank of the ``lora`` method (FSEFT: 4); ``lora_alpha`` = the rank.
        transductive_weight: weight of the size-prior penalty (FSEFT's lambda_TI, 0.1).
        transductive_margin: relative size error tolerated without penalty (FSEFT: 0.3).
        transductive_steps: adaptation steps of ``predict --transductive`` on the given volumes.
        query_downsample: the cached query features are average-pooled by this factor (FSEFT: 2).
    """

    iterations: int = 300
    lr: Optional[float] = None
    batch_size: int = 2
    weight_decay: float = 1e-5
    lora_rank: int = 4
    transductive_weight: float = 0.1
    transductive_margin: float = 0.3
    transductive_steps: int = 50
    query_downsample: int = 2

    def __post_init__(self):
        _check(int(self.iterations) >= 1, "adapter.iterations", f"must be >= 1, got {self.iterations}")
        _check(self.lr is None or float(self.lr) > 0, "adapter.lr", f"must be > 0 or null, got {self.lr}")
        _check(int(self.batch_size) >= 1, "adapter.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(float(self.weight_decay) >= 0, "adapter.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(int(self.lora_rank) >= 1, "adapter.lora_rank", f"must be >= 1, got {self.lora_rank}")
        _check(float(self.transductive_weight) >= 0, "adapter.transductive_weight",
               f"must be >= 0, got {self.transductive_weight}")
        _check(0 <= float(self.transductive_margin) < 1, "adapter.transductive_margin",
               f"must lie in [0, 1), got {self.transductive_margin}")
        _check(int(self.transductive_steps) >= 1, "adapter.transductive_steps", f"must be >= 1, got {self.transductive_steps}")
        _check(int(self.query_downsample) in (1, 2, 4), "adapter.query_downsample",
               f"must be 1, 2 or 4, got {self.query_downsample}")

    def lr_for(self, method: str) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[method]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TaskAdapter:
    """What an adapter task is (``task.json`` ``"adapter"``).

    Attributes:
        method: one of ``METHODS``.
        shots: labelled training volumes used (``None`` = every training case).
        shots_seed: seed of the support draw.
        support: the support case ids (drawn at ``add-task``, recorded).
        transductive: adapt with the size prior on the task's unlabelled test images too.
    """

    method: str
    shots: Optional[int] = None
    shots_seed: int = 0
    support: list = field(default_factory=list)
    transductive: bool = False

    def __post_init__(self):
        _check(self.method in METHODS, "--method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        _check(self.shots is None or int(self.shots) >= 1, "--shots", f"must be >= 1, got {self.shots}")
        _check(not self.transductive or self.method in BLACK_BOX, "--transductive",
               f"works with the black-box methods ({', '.join(BLACK_BOX)}), whose input features are frozen and "
               f"can be cached; not with {self.method!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where="task.json") -> "TaskAdapter":
        if not isinstance(data, dict):
            raise InputError(where, "'adapter' must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(where, f"unknown adapter key(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(where, str(exc)) from None


def draw_support(train_ids: list, shots: Optional[int], seed: int, where: str = "--shots") -> list:
    """The support case ids: ``shots`` of ``train_ids`` drawn with ``seed`` (all of them when ``shots`` is None).

    The draw depends only on the sorted ids and the seed, so it is the same on every machine.

    Raises:
        InputError: more shots than training cases.
    """
    import random

    ids = sorted(train_ids)
    if shots is None:
        return ids
    if int(shots) > len(ids):
        raise InputError(where, f"{shots} shots asked but the task has only {len(ids)} training case(s)")
    return sorted(random.Random(int(seed)).sample(ids, int(shots)))
