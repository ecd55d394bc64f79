"""The fine-tuning strategies the benchmark compares, each a product ``WorkspaceConfig``.

Every strategy runs through the product: a workspace made by ``sequence.init.init_workspace``,
tasks added with ``Workspace.add_task``, trained by ``sequence.runner.refine_workspace`` and
scored by ``evaluation.evaluate.evaluate_workspace``. They differ only in the configuration,
and in three places where the product has no such mode and the benchmark adds the smallest
extension on top of the same building blocks (``retention.fft.train_fft``,
``retention.trainer.run_stage``, ``retention.merge``, ``models.registry``):

==============  ==========  ============================================================
name            kind        what it is (paper Table III name)
==============  ==========  ============================================================
tfs             parallel    train from scratch: one workspace per task whose "foundation"
                            has randomly initialised weights (same architecture)
fft             parallel    full fine-tuning of M0, one workspace per task (FFT)
lora_r2         peft        M0's encoder frozen + LoRA r=2 in the K&G RFT LoRA targets
                            (``retention.lora_targets``: every Linear of SwinUNETR, every
                            Conv3d of the small U-Net), new decoder + head trained; one
                            workspace per task
lora_r8         peft        the same with r=8
head_only       peft        M0's encoder frozen; decoder + 1x1x1 head trained
seq_ft          sequential  every task FFT from M_{t-1}, no buffer (Seq-FT)
seq_random      sequential  KD-FFT with a random buffer, no LoRA stage (Seq-FT + Random)
seq_mds         sequential  KD-FFT with an MDS buffer, no LoRA stage (Seq-FT + MDS)
seq_kg          sequential  full K&G RFT (KD-FFT + LoRA-KD + merge; task 1 FFT + LoRA-KD +
                            merge), random buffer (Seq-FT + K&G)
medseqft        sequential  MDS buffer + full K&G RFT (MedSeqFT)
seq_ewc         sequential  Seq-FT + EWC penalty on the encoder (``benchmark.cl_baselines``,
                            ``retention.ewc``; Lifelong-nnUNet's EWC)
seq_lwf         sequential  Seq-FT + LwF distillation of the old tasks' decoders/heads
                            (``benchmark.cl_baselines``, ``retention.lwf``)
joint           joint       all tasks at once: shared encoder + decoder, one head per task
transfer        transfer    FFT on an unseen task from M0 and from MedSeqFT's final model
==============  ==========  ============================================================

"Head" in our architecture is the task's 1x1x1 ``Conv3d`` (``SegNet.head``); the decoder is
task-specific too (every task gets a new one in the parallel strategies; sequential ones start
it from M_{t-1}'s), so "head-only" trains decoder + head, as the issue asks.

Only the sequential strategies with the LoRA stage (``seq_kg``, ``medseqft``) run LoRA-KD +
merge after task 1 (``retention.first_task_lora``); every other strategy's task 1, and every
parallel task, is plain FFT (``configure``).

**Paired streams.** For one seed, every strategy trains task t on the same patch stream (the
``"task-data"`` seed of ``sequence.stage_setup``, read at the same index on the same step; joint
training reads task t's stream at its k-th turn) and starts task t's head (and deep-supervision
heads) from the same initialisation (``derive_seed(seed, task, "init")``). A difference between
two strategies is then the method, not the draw (``Testing/benchmark/test_paired_streams.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import InputError

__all__ = ["Strategy", "STRATEGIES", "DEFAULT_ORDER", "parse_strategies", "configure"]


@dataclass(frozen=True)
class Strategy:
    """One row of the comparison.

    Attributes:
        name: CLI name.
        label: name in the tables (the paper's where it has one).
        kind: ``parallel`` (one product workspace per task, refined by the runner),
            ``peft`` (one workspace per task, trained by ``benchmark.peft_baselines``),
            ``sequential`` (one workspace with every task, refined by the runner),
            ``joint`` (one workspace, trained by ``benchmark.joint``), ``transfer``.
        enabled, lora_stage, selection: ``RetentionConfig.enabled`` / ``.lora_stage`` and
            ``SelectionConfig.method`` of the workspace.
        random_foundation: the workspace's M0 is a randomly initialised model (TFS).
        peft: ``"lora"`` or ``"head"`` for kind ``peft``.
        rank: LoRA rank for ``peft == "lora"``.
        regulariser: ``"ewc"`` or ``"lwf"``: a sequential strategy trained by
            ``benchmark.cl_baselines`` (Seq-FT + that regulariser) instead of the runner.
    """

    name: str
    label: str
    kind: str
    enabled: bool = True
    lora_stage: bool = True
    selection: str = "random"
    random_foundation: bool = False
    peft: Optional[str] = None
    rank: int = 0
    regulariser: Optional[str] = None

    @property
    def sequential(self) -> bool:
        return self.kind == "sequential"


STRATEGIES = {s.name: s for s in (
    Strategy("tfs", "TFS (from scratch)", "parallel", random_foundation=True),
    Strategy("fft", "FFT (parallel)", "parallel"),
    Strategy("lora_r2", "LoRA r=2 (parallel)", "peft", peft="lora", rank=2),
    Strategy("lora_r8", "LoRA r=8 (parallel)", "peft", peft="lora", rank=8),
    Strategy("head_only", "Decoder+head only (parallel)", "peft", peft="head"),
    Strategy("seq_ft", "Seq-FT", "sequential", enabled=False, lora_stage=False),
    Strategy("seq_random", "Seq-FT + Random", "sequential", lora_stage=False, selection="random"),
    Strategy("seq_mds", "Seq-FT + MDS", "sequential", lora_stage=False, selection="mds"),
    Strategy("seq_kg", "Seq-FT + K&G", "sequential", lora_stage=True, selection="random"),
    Strategy("medseqft", "MedSeqFT (MDS + K&G)", "sequential", lora_stage=True, selection="mds"),
    Strategy("seq_ewc", "Seq-FT + EWC", "sequential", enabled=False, lora_stage=False, regulariser="ewc"),
    Strategy("seq_lwf", "Seq-FT + LwF", "sequential", enabled=False, lora_stage=False, regulariser="lwf"),
    Strategy("joint", "Joint multi-task (all data at once)", "joint"),
    Strategy("transfer", "Transfer to an unseen task", "transfer"),
)}
DEFAULT_ORDER = tuple(STRATEGIES)


def parse_strategies(text: Optional[str]) -> list[str]:
    """``"all"`` / ``None`` -> every strategy; else a comma list of names, in the canonical order.

    ``transfer`` needs ``medseqft`` (its final model), which is then added.

    Raises:
        InputError: an unknown name.
    """
    if text is None or text.strip() in ("", "all"):
        return list(DEFAULT_ORDER)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise InputError("--strategies", f"unknown strateg{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                                         f"choose from {list(DEFAULT_ORDER)} or 'all'")
    if "transfer" in names and "medseqft" not in names:
        names.append("medseqft")
    return [n for n in DEFAULT_ORDER if n in names]


def configure(cfg, strategy: Strategy, settings, seed: int):
    """The workspace configuration of ``strategy``: ``cfg`` with the benchmark's schedule.

    Args:
        cfg: the ``WorkspaceConfig`` ``init_workspace`` wrote (architecture and preprocessing
            of the foundation model).
        strategy: the ``Strategy``.
        settings: ``BenchmarkSettings``.
        seed: the run's seed (``WorkspaceConfig.seed``).

    Returns:
        A new ``WorkspaceConfig``.
    """
    from ..config import SelectionConfig, StageConfig

    s = settings
    stage = StageConfig(int(s.iterations), float(s.lr), int(s.batch_size))
    retention = cfg.retention.replace(
        fft=stage, kd_fft=stage, lora_kd=StageConfig(int(s.lora_iterations), float(s.lora_lr), int(s.batch_size)),
        kd_weight=float(s.kd_weight), enabled=bool(strategy.enabled), lora_stage=bool(strategy.lora_stage),
        # LoRA-KD + merge after task 1 belongs to K&G RFT only: parallel FFT / TFS / transfer stay plain FFT
        first_task_lora=bool(strategy.sequential and strategy.enabled and strategy.lora_stage))
    # a strategy that never reads its buffer still gets one from the runner: random costs nothing
    selection = SelectionConfig(method=strategy.selection, k=int(s.buffer_k), runs=int(s.mds_runs),
                                views_per_batch=min(8, int(s.mds_runs)), pretext=cfg.selection.pretext)
    patch = (int(s.patch_size),) * 3
    return cfg.replace(retention=retention, selection=selection, preprocess=cfg.preprocess.replace(patch_size=patch),
                       seed=int(seed), checkpoint_every_s=60.0)


def workspace_overrides(settings) -> dict:
    """Settings every task of a benchmark workspace takes over its own plan (``workspace.json`` ``overrides``).

    The benchmark fixes the patch and batch so that every strategy and task trains on the same
    input size whatever each task's plan would choose on this machine.
    """
    out = {"preprocess.patch_size": [int(settings.patch_size)] * 3}
    for stage in ("fft", "kd_fft", "lora_kd"):
        out[f"retention.{stage}.batch_size"] = int(settings.batch_size)
    return out
