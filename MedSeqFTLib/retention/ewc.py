"""Elastic Weight Consolidation (EWC, Kirkpatrick et al. 2017) for the shared encoder.

After task j is trained, the diagonal *empirical* Fisher information of its model M_j is
estimated on task j's own training patches:

    F_j[p] = mean over n batches of (d L_seg(M_j(x), y) / d theta_p)^2

with ``L_seg`` the product's Dice + CE loss (``losses.segmentation_loss``) and batches of one
patch (``estimate_fisher``: per-sample gradients, the empirical Fisher's definition). The
anchor theta*_j is M_j's encoder. While task t > j trains, the penalty

    (lambda / 2) * sum_j sum_p F_j[p] * (theta_p - theta*_j[p])^2

is added to the segmentation loss (``ewc_penalty``). One Fisher per earlier task, summed
("per-task" EWC, as Lifelong-nnUNet keeps a Fisher and a parameter copy per task), not the
decayed running sum of online EWC.

Only **encoder** parameters are penalised: in this product every task keeps its own decoder and
head (``evaluation``: row t of the forgetting matrix is E_t with task j's decoder/head), so the
encoder is the only part an earlier task shares with the current one. Parameters that receive
no gradient (frozen, or unused by the forward) get a Fisher of exactly 0.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

__all__ = ["estimate_fisher", "ewc_penalty"]


def estimate_fisher(net, batches: Iterable, loss_fn: Callable, device, prefix: str = "encoder.") -> dict:
    """Diagonal empirical Fisher of ``net``'s parameters named ``prefix*``.

    Args:
        net: ``SegNet`` (or any module whose ``forward(image)`` gives logits (B, C, X, Y, Z)).
        batches: iterable of ``(image (B, C, X, Y, Z), label (B, 1, X, Y, Z))`` tensors; for the
            empirical Fisher use B = 1 (the squared gradient of a batch is not the mean of
            squared per-sample gradients).
        loss_fn: ``loss_fn(logits, label) -> scalar``.
        device: where ``net`` lives.
        prefix: only parameters whose name starts with it (``"encoder."``; ``""`` = all).

    Returns:
        ``{name: tensor}`` on the CPU, float32, same shapes as the parameters, >= 0.

    Raises:
        ValueError: ``batches`` is empty.
    """
    import torch

    params = {n: p for n, p in net.named_parameters() if n.startswith(prefix)}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32, device="cpu") for n, p in params.items()}
    was_training = net.training
    net.eval()  # the model as it is used: no dropout; instance norm is per sample either way
    n = 0
    try:
        for image, label in batches:
            image, label = image.to(device), label.to(device)
            net.zero_grad(set_to_none=True)
            loss = loss_fn(net(image), label)
            loss.backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach().float().cpu() ** 2
            n += 1
    finally:
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    if n == 0:
        raise ValueError("estimate_fisher needs at least one batch, got none")
    return {k: v / n for k, v in fisher.items()}


def ewc_penalty(named_params: Mapping, fishers: Iterable[tuple[Mapping, Mapping]], lam: float):
    """``lam / 2 * sum over (F, anchor) of sum_p F[p] * (theta_p - anchor[p])^2``.

    Args:
        named_params: ``{name: Parameter}`` of the model being trained (names as in the Fisher).
        fishers: ``(fisher, anchor)`` pairs, one per earlier task, ``{name: tensor}`` each
            (on any device; moved to the parameter's).
        lam: lambda.

    Returns:
        A scalar tensor (0 when there is nothing to penalise).

    Raises:
        KeyError: a Fisher names a parameter the model does not have.
    """
    import torch

    total = None
    for fisher, anchor in fishers:
        for name, f in fisher.items():
            p = named_params[name]
            term = (f.to(p.device, p.dtype) * (p - anchor[name].to(p.device, p.dtype)) ** 2).sum()
            total = term if total is None else total + term
    if total is None:
        ref = next(iter(named_params.values()), None)
        return torch.zeros((), device=ref.device if ref is not None else "cpu")
    return 0.5 * float(lam) * total
