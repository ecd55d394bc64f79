"""KD-based full fine-tuning (task t > 1): learn task t while the encoder stays close to E_{t-1}.

Per step, with task patches (x_t, y_t) and buffer patches x_b (earlier tasks' MDS buffers):

* ``seg = DiceCE(head(decoder(E(x_t))), y_t)`` (plus deep supervision where configured);
* ``kd = mean over distilled scales of MSE(E(x_b)_s, E_{t-1}(x_b)_s)`` with the frozen
  teacher under ``torch.inference_mode`` (no graph; on CUDA under the stage's autocast, which
  ``run_stage`` opens around the whole step), only on steps with ``step % kd_every == 0``.

Two ways to apply them (``RetentionConfig.kd_update``):

* ``"independent"`` (default, the paper: "both losses are computed independently to avoid
  optimization conflicts, with each updating only its corresponding parameters"): two AdamW
  optimisers (``retention.optimizers``). ``seg`` is back-propagated on its own and steps
  encoder + decoder + head; ``kd`` is back-propagated on its own and steps only the encoder,
  with its own Adam moments. Adam is invariant to a constant loss factor, so ``kd_weight``
  scales the KD optimiser's *learning rate* (``kd_fft.lr * kd_weight``); the KD optimiser has no
  weight decay (the encoder decays once per step, in the segmentation optimiser). By default the
  two encoder forwards run separately, so each backward covers only its own samples
  (``fuse=True``: one forward on ``cat([x_t, x_b])``, each loss back-propagated through the
  shared graph: same gradients, more backward work; ``fuse_default``).
* ``"joint"``: one encoder forward on ``cat([x_t, x_b])`` (instance/layer norm are per sample,
  so this equals two forwards up to float rounding), one backward of
  ``seg_weight * seg + kd_weight * kd`` and one AdamW step. ``kd``'s gradient lands only on the
  encoder (decoder and head are not in its graph), so this sums the two losses' encoder
  gradients into one Adam state. See docs/method.md; costs in docs/overhead.md.

The fused forward needs task and buffer patches of one spatial size; otherwise a step runs two.
Neither choice changes which patches are drawn.
"""

from __future__ import annotations

from typing import Optional

from .batches import SamplerFactory, to_device
from .losses import distillation_loss, segmentation_loss
from .trainer import OptimizerSpec, StageLog, StageSpec, run_stage

__all__ = ["train_kd_fft", "KD_UPDATES", "fuse_default"]

KD_UPDATES = ("independent", "joint")


def fuse_default(device, update: str) -> bool:
    """Whether a distillation step runs the student encoder once on ``cat([x_t, x_b])`` by default.

    ``"joint"``: yes (one backward of one loss: the same work as two forwards, in fewer, larger
    kernels; on the CPU it also avoids PyTorch's slow kernel for a single buffer patch: 1.28 vs
    1.55 x FFT per step at 48^3, ``kd_every`` 2, docs/overhead.md table 2). ``"independent"``: no.
    Its two losses need two backward passes, and through one fused graph each of them runs over
    all ``n_t + n_b`` samples (twice the encoder's backward work of two separate forwards):
    measured 1.62 vs 1.28 with 2 buffer patches, 1.49 vs 1.53 with 1. ``device`` is accepted so
    that a GPU measurement can change the rule per device type.

    Raises:
        ValueError: unknown ``update``.
    """
    if update not in KD_UPDATES:
        raise ValueError(f"update must be one of {list(KD_UPDATES)}, got {update!r}")
    return update == "joint"


def train_kd_fft(net, teacher, spec: StageSpec, task_batches: SamplerFactory, buffer_batches: SamplerFactory,
                 reporter, device, kd_weight: float, scales, seg_weight: float = 1.0, kd_every: int = 1,
                 deep_supervision: bool = False, update: str = "independent",
                 fuse: Optional[bool] = None) -> StageLog:
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
        kd_weight: strength of the distillation (``RetentionConfig.kd_weight``): the KD
            optimiser's learning-rate factor with ``update="independent"``, the loss weight with
            ``"joint"``; 0 turns distillation off.
        scales: encoder output indices to distil (``losses.resolve_scales``).
        seg_weight: weight of the segmentation loss; 0 skips the decoder entirely (used by the
            tests to show that distillation alone touches only the encoder).
        kd_every: distil on steps with ``step % kd_every == 0`` only (``RetentionConfig.kd_every``);
            the other steps are plain segmentation steps (the KD optimiser does not step).
        deep_supervision: auxiliary segmentation losses on the decoder's coarser outputs
            (``retention.deep_supervision``), as in FFT.
        update: ``"independent"`` or ``"joint"`` (``RetentionConfig.kd_update``, module docstring).
        fuse: one student encoder forward on ``cat([x_t, x_b])`` on distillation steps (``True``),
            two (``False``), or ``None`` = ``fuse_default(device, update)``.

    Returns:
        ``StageLog`` with ``seg`` and ``kd`` loss curves and ``kd_update`` / ``kd_lr`` /
        ``kd_fused_forward`` in its extras.

    Raises:
        ValueError: both weights are zero, or an unknown ``update``.
        errors.Cancelled: cancel requested (checkpoint written).
    """
    import torch

    fused = fuse_default(device, update) if fuse is None else bool(fuse)  # raises on an unknown update
    loss_fn = segmentation_loss()
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    use_kd = buffer_batches is not None and kd_weight > 0
    use_seg = seg_weight > 0
    if not (use_kd or use_seg):
        raise ValueError("KD-FFT needs a segmentation or a distillation loss (both weights are zero)")
    independent = update == "independent" and use_kd
    from .deep_supervision import aux_head_seed, make_deep_supervision, segmentation_step

    params = {n: p for n, p in net.named_parameters() if p.requires_grad and (use_seg or n.startswith("encoder."))}
    ds = make_deep_supervision(net, deep_supervision and use_seg, seed=aux_head_seed(spec),
                               head_prior=getattr(spec.recipe, "head_prior", 0.01))
    if ds is not None:
        ds.to(device)
        params.update({f"deep_supervision.{n}": p for n, p in ds.named_parameters()})
    optimizers = None
    if independent:
        encoder = tuple(n for n in params if n.startswith("encoder."))
        optimizers = {"kd": OptimizerSpec(encoder, lr_scale=float(kd_weight), weight_decay=0.0)}
        if use_seg:
            optimizers = {"seg": OptimizerSpec(tuple(params)), **optimizers}  # seg steps first

    every = max(1, int(kd_every)) if use_seg else 1

    def targets(x_b):
        """E_{t-1}(x_b): no graph (inference mode), under the stage's autocast; cloned to normal tensors
        so that the MSE may save them for its backward."""
        with torch.inference_mode():
            out = teacher(x_b)
        return [t.clone() for t in out]

    def make_step(start: int, streams):
        task = streams(task_batches, "task-batches") if use_seg else None
        # the buffer stream is read on distillation steps only: a resumed stage continues it after
        # the ceil(start / every) batches the steps before ``start`` took
        buffer = streams(buffer_batches, "buffer-batches", start=-(-start // every)) if use_kd else None

        def step(index: int):
            losses = {}
            x_t = y_t = x_b = None
            if use_seg:
                x_t, y_t = to_device(task.next_batch(), device)
            do_kd = use_kd and index % every == 0
            if do_kd:
                x_b, _ = to_device(buffer.next_batch(), device, need_label=False)
            f_t = f_b = None
            if use_seg and do_kd and fused and x_t.shape[1:] == x_b.shape[1:]:
                # one student forward (norms are per sample: equal to two forwards up to rounding)
                feats = net.encoder(torch.cat([x_t, x_b]))
                n = x_t.shape[0]
                f_t, f_b = [f[:n] for f in feats], [f[n:] for f in feats]
            if do_kd:
                f_b = net.encoder(x_b) if f_b is None else f_b
                kd = distillation_loss(f_b, targets(x_b), scales)
                losses["kd"] = float(kd.detach())
            if use_seg:
                seg = segmentation_step(net, net.encoder(x_t) if f_t is None else f_t, y_t, loss_fn, ds)
                losses["seg"] = float(seg.detach())
            if independent:  # kd first (its graph is retained for seg's backward), each to its own optimiser
                out = {"kd": kd} if do_kd else {}
                if use_seg:
                    out["seg"] = seg_weight * seg
                return out, losses
            total = 0.0
            if use_seg:
                total = total + seg_weight * seg
            if do_kd:
                total = total + kd_weight * kd
            return total, losses

        return step

    log = run_stage(spec, params, make_step, reporter, device, modules=(net,) + ((ds,) if ds is not None else ()),
                    optimizers=optimizers)
    log.extra.update({"kd_update": update if use_kd else "none",
                      "kd_lr": float(spec.lr) * float(kd_weight) if independent else None,
                      "kd_fused_forward": bool(use_kd and use_seg and fused)})
    return log
