"""LoRA-based distillation: E_{t-1} + LoRA learns to reproduce E_{t-mid} on task-t data.

E_{t-1} (the student's frozen base; E_0 = M0's encoder for task 1) and E_{t-mid} (the
KD-FFT encoder, or task 1's FFT encoder: the frozen target) stay fixed; only the rank-r LoRA
weights of the student (in the layers ``retention.lora_targets`` selects) are trained, with the
MSE between the two encoders' outputs over the distilled scales. ``merge.merge_lora`` then
folds the LoRA into E_{t-1}'s weights to give E_t.
"""

from __future__ import annotations

from .batches import SamplerFactory, to_device
from .losses import distillation_loss
from .merge import lora_parameters
from .trainer import StageLog, StageSpec, run_stage

__all__ = ["train_lora_kd"]


def train_lora_kd(student, target, spec: StageSpec, task_batches: SamplerFactory, reporter, device, scales) -> StageLog:
    """Train the LoRA weights of ``student`` so that ``student(x) ~ target(x)`` on task patches.

    Args:
        student: E_{t-1} with LoRA injected by ``merge.add_lora`` (only LoRA trainable), on ``device``.
        target: E_{t-mid}, frozen here, on ``device``.
        spec: stage folder and optimizer settings (``retention.lora_kd``).
        task_batches: ``factory(seed)`` of task-t samplers (labels unused).
        reporter: progress and cancel.
        device: where both encoders live.
        scales: encoder output indices to match.

    Returns:
        ``StageLog`` with the ``lora_kd`` loss curve.

    Raises:
        ValueError: ``student`` has no LoRA weights.
        errors.Cancelled: cancel requested (checkpoint written).
    """
    import torch

    params = lora_parameters(student)
    if not params:
        raise ValueError("the student encoder has no LoRA weights; call merge.add_lora first")
    target.eval()
    for p in target.parameters():
        p.requires_grad_(False)

    def make_step(start: int, streams):
        sampler = streams(task_batches, "task-batches")

        def step(_: int):
            image, _ = to_device(sampler.next_batch(), device, need_label=False)
            with torch.no_grad():
                wanted = target(image)
            loss = distillation_loss(student(image), wanted, scales)
            return loss, {"lora_kd": float(loss.detach())}

        return step

    return run_stage(spec, params, make_step, reporter, device, modules=(student,))
