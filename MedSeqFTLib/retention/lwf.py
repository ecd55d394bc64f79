"""Learning without Forgetting (LwF, Li & Hoiem 2016) for a shared encoder with one decoder + head per task.

While task t trains, every earlier task j keeps its own frozen decoder D_j and head H_j. On the
*current* task's patches x_t, the old model's answer for task j is ``H_j(D_j(E_{t-1}(x_t)))``
(E_{t-1} frozen) and the student's is ``H_j(D_j(E(x_t)))`` (gradient reaches E only). The LwF
loss is the temperature-scaled distillation of Hinton et al. that LwF uses,

    T^2 * KL( softmax(z_old / T) || softmax(z_new / T) )   per voxel, averaged over voxels,

averaged over the earlier tasks, with T = 2 (Lifelong-nnUNet's default ``-lwf_temperature 2.0``).
The training loss is ``seg + weight * lwf``. No earlier-task data is needed (that is LwF's
point); the buffer of the MedSeqFT strategies plays no role here.
"""

from __future__ import annotations

__all__ = ["distillation_kl", "LWF_TEMPERATURE"]

LWF_TEMPERATURE = 2.0


def distillation_kl(student_logits, teacher_logits, temperature: float = LWF_TEMPERATURE):
    """``T^2 * mean over voxels of KL(softmax(teacher/T) || softmax(student/T))`` over the class axis 1.

    Args:
        student_logits: (B, C, X, Y, Z) logits with gradient.
        teacher_logits: (B, C, X, Y, Z) logits (no gradient needed).
        temperature: T > 0.

    Returns:
        A scalar tensor, >= 0, exactly 0 when the logits are equal.

    Raises:
        ValueError: shapes differ or ``temperature`` <= 0.
    """
    import torch.nn.functional as F

    if tuple(student_logits.shape) != tuple(teacher_logits.shape):
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
                         f"{tuple(teacher_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t = float(temperature)
    log_p = F.log_softmax(student_logits.float() / t, dim=1)
    log_q = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=1)  # per voxel
    return (t * t) * kl.mean()
