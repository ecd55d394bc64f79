"""How big a benchmark is: phantom size, iterations per stage, buffer, seeds (validated, saved with the results).

Every strategy of one benchmark gets the same per-stage budget (``iterations`` for FFT /
KD-FFT / PEFT and, per task, for joint training; ``lora_iterations`` for LoRA-KD), the same
optimizer settings and the same train/test split of every task (``split_seed``, fixed for all
strategies and seeds: seeds vary the training randomness, not the data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..errors import InputError

__all__ = ["BenchmarkSettings", "BENCH_PRESETS", "bench_preset", "DEFAULT_SEEDS", "MIN_TEST_CASES"]


@dataclass
class BenchmarkSettings:
    """Sizes and schedule of one benchmark.

    Attributes:
        phantom_tasks: phantom tasks in the sequence (only when no ``--tasks`` are given).
        phantom_cases: labelled cases per phantom task.
        phantom_size: nominal phantom voxels per axis (field of view = size x 3 mm).
        transfer: also generate one unseen phantom task for the transfer experiment.
        train_fraction: share of each task's labelled cases used for training.
        split_seed: seed of every task's train/test split (the same for all strategies and seeds).
        patch_size: training patch edge (voxels); must be divisible by the backbone's divisor.
        iterations: optimizer steps of every FFT / KD-FFT / PEFT stage (joint: per task).
        lora_iterations: steps of the LoRA-KD stage.
        lr: AdamW learning rate of FFT / KD-FFT / PEFT / joint training.
        lora_lr: AdamW learning rate of LoRA-KD.
        batch_size: task patches per step.
        kd_weight: weight of the buffer distillation loss.
        buffer_k: buffer cases per task (MDS or random).
        mds_runs: stochastic SSL-loss evaluations per case for MDS.
        ewc_lambda: EWC penalty strength (``retention.ewc``; untuned: a common order of magnitude
            for a diagonal empirical Fisher averaged over patches).
        ewc_fisher_batches: single-patch batches the Fisher of each finished task is estimated on.
        lwf_weight: weight of the LwF distillation loss (``retention.lwf``; Li & Hoiem's lambda_o = 1).
        lwf_temperature: LwF temperature (Lifelong-nnUNet's default 2).

    ``test_cases`` (a property) is the number of test cases per phantom task the split leaves.
    """

    phantom_tasks: int = 4
    phantom_cases: int = 8
    phantom_size: int = 32
    transfer: bool = True
    train_fraction: float = 0.75
    split_seed: int = 0
    patch_size: int = 32
    iterations: int = 60
    lora_iterations: int = 15
    lr: float = 3e-3
    lora_lr: float = 1e-2
    batch_size: int = 2
    kd_weight: float = 0.1
    buffer_k: int = 2
    mds_runs: int = 16
    ewc_lambda: float = 1000.0
    ewc_fisher_batches: int = 16
    lwf_weight: float = 1.0
    lwf_temperature: float = 2.0

    @property
    def test_cases(self) -> int:
        """Test cases per phantom task after the split (``data.split.make_split``'s rounding)."""
        train = min(max(1, round(self.phantom_cases * self.train_fraction)), self.phantom_cases - 1)
        return int(self.phantom_cases - train)

    def __post_init__(self):
        checks = [
            (self.phantom_tasks >= 2, "phantom_tasks", "must be >= 2 (a sequence needs two tasks)"),
            (self.phantom_cases >= 3, "phantom_cases", "must be >= 3"),
            (16 <= self.phantom_size <= 256, "phantom_size", "must lie in [16, 256]"),
            (0.0 < self.train_fraction < 1.0, "train_fraction", "must lie strictly between 0 and 1"),
            (self.patch_size >= 8, "patch_size", "must be >= 8"),
            (self.iterations >= 1, "iterations", "must be >= 1"),
            (self.lora_iterations >= 1, "lora_iterations", "must be >= 1"),
            (self.lr > 0 and self.lora_lr > 0, "lr", "learning rates must be > 0"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (self.kd_weight >= 0, "kd_weight", "must be >= 0"),
            (self.buffer_k >= 1, "buffer_k", "must be >= 1"),
            (self.mds_runs >= 1, "mds_runs", "must be >= 1"),
            (self.ewc_lambda >= 0, "ewc_lambda", "must be >= 0"),
            (self.ewc_fisher_batches >= 1, "ewc_fisher_batches", "must be >= 1"),
            (self.lwf_weight >= 0, "lwf_weight", "must be >= 0"),
            (self.lwf_temperature > 0, "lwf_temperature", "must be > 0"),
        ]
        for ok, name, problem in checks:
            if not ok:
                raise InputError(f"benchmark.{name}", f"{problem}, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "benchmark settings") -> "BenchmarkSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(where, f"unknown benchmark setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes) -> "BenchmarkSettings":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


BENCH_PRESETS = {
    # the statistics default (issue 11): 16 cases per phantom task split 8 train / 8 test, so every task is
    # scored on >= 8 test cases; 5 seeds (``DEFAULT_SEEDS``). About 5 x the old 3-seed/4-test-case cost on 2 cores.
    "cpu": BenchmarkSettings(phantom_cases=16, train_fraction=0.5),
    # a lent GPU: bigger phantoms, 32 cases split 24 train / 8 test, ~17x the iterations; patch 64 suits
    # SwinUNETR (multiple of 32) too; still the demo-size backbone unless --foundation names a bigger M0
    "gpu": BenchmarkSettings(phantom_tasks=4, phantom_cases=32, phantom_size=64, patch_size=64, iterations=1000,
                             lora_iterations=200, lr=1e-3, lora_lr=1e-3, batch_size=4, buffer_k=4, mds_runs=128),
    # the recipe of the numbers in docs/benchmarks.md before issue 11 (8 cases: 6 train / 2 test, 3 seeds)
    "cpu_old": BenchmarkSettings(),
    # the fast test
    "tiny": BenchmarkSettings(phantom_tasks=2, phantom_cases=4, phantom_size=24, transfer=False, train_fraction=0.5,
                              patch_size=16, iterations=3, lora_iterations=2, buffer_k=1, mds_runs=2,
                              ewc_fisher_batches=2),
}
DEFAULT_SEEDS = 5  # >= 5 paired seeds: below that the bootstrap CI of ``stats`` is not trustworthy
MIN_TEST_CASES = 8


def bench_preset(name: str, **overrides: Optional[object]) -> BenchmarkSettings:
    """A preset (``cpu``, ``gpu``, ``tiny``) with non-``None`` overrides applied.

    Raises:
        InputError: unknown preset or an override out of range.
    """
    if name not in BENCH_PRESETS:
        raise InputError("--preset", f"unknown benchmark preset {name!r}; choose one of {sorted(BENCH_PRESETS)}")
    return dataclasses.replace(BENCH_PRESETS[name]).replace(**overrides)
