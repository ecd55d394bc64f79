"""What every training stage of every strategy is built from: batch sources and stage specs.

One place turns a task's configuration (``Workspace.task_config``: the workspace settings with
the task's plan and overrides applied) into patch samplers (class-aware, augmented per
``RecipeConfig``) and ``StageSpec``s (schedule, clipping, AMP, loader workers), so K&G RFT, the
sequential baselines and the benchmark's extra strategies differ only in their method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ["sampler_factory", "stage_spec"]


def sampler_factory(cfg, cases: list, batch_size: int, augment: Optional[bool] = None):
    """``factory(seed) -> PatchSampler`` over ``cases`` with ``cfg``'s patch, class share and augmentation.

    Args:
        cfg: the task's ``WorkspaceConfig``.
        cases: ``PreparedCase``s with labels.
        batch_size: patches per batch.
        augment: override ``cfg.recipe.augment`` (``None``: follow it).
    """
    from ..data.sampling import PatchSampler

    pp, recipe = cfg.preprocess, cfg.recipe
    use_aug = recipe.augment if augment is None else bool(augment)

    def factory(seed: int):
        augmenter = None
        if use_aug:
            from ..data.augment import Augmenter

            augmenter = Augmenter(elastic=bool(recipe.elastic))
        return PatchSampler(cases, tuple(pp.patch_size), int(batch_size), float(pp.pos_fraction), int(seed),
                            augment=augmenter)

    return factory


def stage_spec(cfg, folder: Path, task: str, stage: str, stage_cfg, device, data_tag: Optional[str] = None):
    """The ``StageSpec`` of one stage.

    Args:
        cfg: the task's ``WorkspaceConfig`` (seed, recipe, checkpoint interval).
        folder: the stage folder.
        task: task name (progress events, seeds).
        stage: ``fft``, ``kd_fft``, ``lora_kd`` ...
        stage_cfg: the stage's ``StageConfig`` (iterations, lr, weight decay).
        device: training device (picks the loader worker count).
        data_tag: stages given the same tag draw the same patch streams (e.g. ``"task-data"``
            for FFT and KD-FFT, so strategies are compared on identical task patches);
            ``None`` = the stage's own streams.
    """
    from ..retention.batches import default_workers
    from ..retention.trainer import StageSpec, derive_seed

    return StageSpec(stage=stage, task=task, folder=Path(folder), iterations=int(stage_cfg.iterations),
                     lr=float(stage_cfg.lr), weight_decay=float(stage_cfg.weight_decay),
                     checkpoint_every_s=float(cfg.checkpoint_every_s), seed=derive_seed(cfg.seed, task, stage),
                     recipe=cfg.recipe,
                     data_seed=derive_seed(cfg.seed, task, data_tag) if data_tag is not None else None,
                     workers=default_workers(device, cfg.recipe.workers))
