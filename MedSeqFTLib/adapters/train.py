"""Training an adapter task's modules: segmentation loss on support patches, plus the size prior.

``train_adapter`` is one stage of the shared trainer (``retention.trainer.run_stage``: schedule,
clipping, AMP, progress, cancel, checkpoints, resume). With a ``QueryPrior`` every step also
adds FSEFT's size penalty (``size_prior``) on the cached frozen features of one unlabelled query
volume, cycling through them. ``adapt_on_queries`` runs the same step for ``predict
--transductive`` on volumes given at prediction time, in memory, without touching the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["QueryPrior", "query_features", "train_adapter", "adapt_on_queries", "penalty_on", "proportions_on"]


@dataclass
class QueryPrior:
    """The transductive term: cached query features and the support's size prior.

    Attributes:
        features: per query volume, the frozen base's feature map (C, x, y, z) on the device
            (average-pooled by ``adapter.query_downsample``).
        target: (n_classes - 1,) target proportions (``size_prior.target_proportions``).
        margin, weight: the penalty's dead zone and weight.
    """

    features: list
    target: np.ndarray
    margin: float
    weight: float


def query_features(net, images: Sequence[np.ndarray], patch_size, device, downsample: int = 2,
                   overlap: float = 0.5) -> list:
    """The frozen base's feature map of each query image (sliding window, Gaussian blending).

    Args:
        net: an adapter ``SegNet`` (decoder is an ``AdaptedDecoder``).
        images: preprocessed (C, X, Y, Z) float32 arrays.
        patch_size: the window (multiple of the backbone's divisor).
        device: where ``net`` is.
        downsample: average-pooling factor of the cached maps (FSEFT caches at half resolution).

    Returns:
        ``[(F, X/d, Y/d, Z/d) tensor]`` on ``device``, no gradient.
    """
    import torch
    import torch.nn.functional as F
    from monai.inferers import sliding_window_inference

    out = []
    net.eval()
    with torch.no_grad():  # not inference_mode: the cached maps feed the adapter's autograd graph later
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(device)
            feats = sliding_window_inference(x, roi_size=tuple(int(p) for p in patch_size), sw_batch_size=1,
                                             predictor=lambda p: net.decoder.features(net.encoder(p)),
                                             overlap=overlap, mode="gaussian")
            if downsample > 1:
                feats = F.avg_pool3d(feats, downsample, ceil_mode=True)
            out.append(feats[0].clone())
    return out


def proportions_on(net, features):
    """Predicted proportions (n_classes - 1,) of the adapter + head on one cached feature map (F, x, y, z)."""
    import torch

    from .size_prior import predicted_proportions

    probs = torch.softmax(net.head(net.decoder.adapter(features[None])).float(), dim=1)
    return predicted_proportions(probs)


def penalty_on(net, prior: QueryPrior, step: int):
    """The size penalty on query volume ``step % len(prior.features)``; also returns its proportions."""
    from .size_prior import size_penalty

    predicted = proportions_on(net, prior.features[step % len(prior.features)])
    return size_penalty(predicted, prior.target, prior.margin, prior.weight), predicted


def _step_fn(net, sampler, loss_fn, device, prior: Optional[QueryPrior]):
    from ..retention.batches import to_device

    def step(i: int):
        image, label = to_device(sampler.next_batch(), device)
        net.check_input(image)
        seg = loss_fn(net(image), label)
        losses = {"seg": float(seg.detach())}
        if prior is None:
            return seg, losses
        size, _ = penalty_on(net, prior, i)
        losses["size"] = float(size.detach())
        return seg + size, losses

    return step


def train_adapter(net, spec, support_batches, reporter, device, prior: Optional[QueryPrior] = None):
    """Train the trainable parameters of adapter net ``net`` (on ``device``) for ``spec.iterations`` steps.

    Args:
        net: from ``surgery.build_adapter_net``; modified in place.
        spec: the stage's ``StageSpec`` (stage ``"adapter"``).
        support_batches: ``factory(seed)`` of support patch samplers (image + label).
        prior: the transductive term, or ``None``.

    Returns:
        ``StageLog`` with the ``seg`` (and ``size``) loss curves.

    Raises:
        errors.Cancelled: cancel requested (checkpoint written).
    """
    from ..retention.losses import segmentation_loss
    from ..retention.trainer import run_stage

    loss_fn = segmentation_loss()
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}

    def make_step(start: int, streams):
        return _step_fn(net, streams(support_batches, "task-batches"), loss_fn, device, prior)

    return run_stage(spec, params, make_step, reporter, device, modules=(net,))


def adapt_on_queries(net, sampler, prior: QueryPrior, steps: int, lr: float, weight_decay: float, device,
                     reporter=None, task: Optional[str] = None) -> dict:
    """``steps`` AdamW steps of support segmentation + size penalty on ``prior``'s volumes (in memory).

    Returns:
        ``{"before": [[proportion per class] per query], "after": [...], "target": [...]}``.
    """
    import torch

    from ..retention.losses import segmentation_loss

    def snapshot():
        with torch.no_grad():
            return [[round(float(v), 6) for v in proportions_on(net, f)] for f in prior.features]

    before = snapshot()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(lr), weight_decay=float(weight_decay))
    step_fn = _step_fn(net, sampler, segmentation_loss(), device, prior)
    net.train()
    for i in range(int(steps)):
        opt.zero_grad(set_to_none=True)
        loss, losses = step_fn(i)
        loss.backward()
        opt.step()
        if reporter is not None:
            reporter.progress("transductive", task, i + 1, int(steps), losses=losses)
    net.eval()
    return {"before": before, "after": snapshot(), "target": [round(float(t), 6) for t in prior.target]}
