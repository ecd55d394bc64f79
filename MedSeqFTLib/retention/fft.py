"""Full fine-tuning (FFT): encoder + decoder + head trained with Dice + CE on task patches.

Task 1 of MedSeqFT (from M0 with a new decoder and head), and every task of plain sequential
fine-tuning (``retention.enabled = False``, from M_{t-1} with a new head).
"""

from __future__ import annotations

from .batches import SamplerFactory, to_device
from .losses import segmentation_loss
from .trainer import StageLog, StageSpec, run_stage

__all__ = ["train_fft"]


def train_fft(net, spec: StageSpec, task_batches: SamplerFactory, reporter, device,
              deep_supervision: bool = False) -> StageLog:
    """Train every parameter of ``net`` (a ``SegNet`` on ``device``) for ``spec.iterations`` steps.

    Args:
        net: ``SegNet``; modified in place.
        spec: stage folder and optimizer settings (``StageSpec``).
        task_batches: ``factory(seed)`` of task-t patch samplers (image + label).
        reporter: progress and cancel.
        device: the device ``net`` is on.
        deep_supervision: add auxiliary losses on the decoder's coarser outputs where the
            decoder supports it (``retention.deep_supervision``; the auxiliary heads are
            discarded after the stage).

    Returns:
        ``StageLog`` with the ``seg`` loss curve.

    Raises:
        errors.Cancelled: cancel requested (checkpoint written).
    """
    from .deep_supervision import aux_head_seed, make_deep_supervision, segmentation_step

    loss_fn = segmentation_loss()
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    ds = make_deep_supervision(net, deep_supervision, seed=aux_head_seed(spec), head_prior=getattr(spec.recipe, "head_prior", 0.01))
    if ds is not None:
        ds.to(device)
        params.update({f"deep_supervision.{n}": p for n, p in ds.named_parameters()})

    def make_step(start: int, streams):
        sampler = streams(task_batches, "task-batches")

        def step(_: int):
            image, label = to_device(sampler.next_batch(), device)
            net.check_input(image)
            loss = segmentation_step(net, net.encoder(image), label, loss_fn, ds)
            return loss, {"seg": float(loss.detach())}

        return step

    return run_stage(spec, params, make_step, reporter, device, modules=(net,) + ((ds,) if ds is not None else ()))
