"""KD-based full fine-tuning (task t > 1): learn task t while the encoder stays close to E_{t-1}.

Per step, with task patches (x_t, y_t) and buffer patches x_b (earlier tasks' MDS buffers):

* one encoder forward on ``cat([x_t, x_b])`` (instance/layer norm are per sample, so this
  equals two separate forwards and saves a kernel launch per layer);
* ``seg = DiceCE(head(decoder(E(x_t))), y_t)``;
* ``kd = mean over distilled scales of MSE(E(x_b)_s, E_{t-1}(x_b)_s)`` with the frozen
  teacher under ``no_grad``;
* one backward of ``seg_weight * seg + kd_weight * kd``, one AdamW step (``run_stage``).

Gradient routing: ``kd`` is a function of the encoder parameters only (the decoder and head
are not in its graph, the teacher is frozen), so its gradient lands only on the encoder;
``seg``'s gradient lands on encoder, decoder and head. By linearity of differentiation the
single backward gives exactly the gradients of two separate backward passes accumulated into
the same ``.grad`` buffers, at the cost of one. See docs/method.md.
"""

from __future__ import annotations

from .batches import SamplerFactory, to_device
from .losses import distillation_loss, segmentation_loss
from .trainer import StageLog, StageSpec, run_stage

__all__ = ["train_kd_fft"]


def train_kd_fft(net, teacher, spec: StageSpec, task_batches: SamplerFactory, buffer_batches: SamplerFactory,
                 reporter, device, kd_weight: float, scales, seg_weight: float = 1.0, kd_every: int = 1,
                 deep_supervision: bool = False) -> StageLog:
    """Train ``net`` on task t with distillation of its encoder towards ``teacher`` on buffer patches.

    Args:
        net: ``SegNet`` initialised from M_{t-1} (encoder, decoder) with a new head; trained in place.
        teacher: frozen copy of E_{t-1} on ``device``.
        spec: stage folder and optimizer settings.
        task_batches: ``factory(seed)`` of task-t samplers (image + label).
        buffer_batches: ``factory(seed)`` of buffer samplers (image; label unused), or ``None``
            when there is no buffer (then this is plain FFT).
        reporter: progress and cancel.
        device: where ``net`` and ``teacher`` live.
        kd_weight: weight of the distillation loss (``RetentionConfig.kd_weight``).
        scales: encoder output indices to distil (``losses.resolve_scales``).
        seg_weight: weight of the segmentation loss; 0 skips the decoder entirely (used by the
            tests to show that distillation alone touches only the encoder).
        kd_every: distil on steps with ``step % kd_every == 0`` only (``RetentionConfig.kd_every``);
            the other steps are plain segmentation steps.
        deep_supervision: auxiliary segmentation losses on the decoder's coarser outputs
            (``retention.deep_supervision``), as in FFT.

    Returns:
        ``StageLog`` with ``seg`` and ``kd`` loss curves.

    Raises:
        errors.Cancelled: cancel requested (checkpoint written).
    """
    import torch

    loss_fn = segmentation_loss()
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    use_kd = buffer_batches is not None and kd_weight > 0
    use_seg = seg_weight > 0
    if not (use_kd or use_seg):
        raise ValueError("KD-FFT needs a segmentation or a distillation loss (both weights are zero)")
    from .deep_supervision import make_deep_supervision, segmentation_step

    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    ds = make_deep_supervision(net, deep_supervision and use_seg)
    if ds is not None:
        ds.to(device)
        params.update({f"deep_supervision.{n}": p for n, p in ds.named_parameters()})

    def make_step(start: int, streams):
        task = streams(task_batches, "task-batches") if use_seg else None
        buffer = streams(buffer_batches, "buffer-batches") if use_kd else None

        def step(index: int):
            losses, total = {}, 0.0
            x_t = y_t = x_b = None
            if use_seg:
                x_t, y_t = to_device(task.next_batch(), device)
            do_kd = use_kd and (index % max(1, int(kd_every)) == 0 or not use_seg)
            if do_kd:
                x_b, _ = to_device(buffer.next_batch(), device, need_label=False)
            if use_seg and do_kd and x_t.shape[1:] == x_b.shape[1:]:
                feats = net.encoder(torch.cat([x_t, x_b]))
                n = x_t.shape[0]
                f_t, f_b = [f[:n] for f in feats], [f[n:] for f in feats]
            else:
                f_t = net.encoder(x_t) if use_seg else None
                f_b = net.encoder(x_b) if do_kd else None
            if use_seg:
                seg = segmentation_step(net, f_t, y_t, loss_fn, ds)
                total = total + seg_weight * seg
                losses["seg"] = float(seg.detach())
            if do_kd:
                with torch.no_grad():
                    target = teacher(x_b)
                kd = distillation_loss(f_b, target, scales)
                total = total + kd_weight * kd
                losses["kd"] = float(kd.detach())
            return total, losses

        return step

    return run_stage(spec, params, make_step, reporter, device, modules=(net,) + ((ds,) if ds is not None else ()))
