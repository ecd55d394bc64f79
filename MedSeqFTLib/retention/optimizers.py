"""The optimisers of a training stage: one AdamW by default, or several named ones.

A stage trains a dict of named parameters (``params``: what its checkpoint stores). By default
one AdamW steps all of them with the step's single loss. A stage may instead declare several
named optimisers (``OptimizerSpec``: which of its parameters each one steps, its learning-rate
scale and its weight decay). Its step function then returns ``{optimiser name: loss}``; each
loss is back-propagated on its own, and its gradients reach only its own optimiser's
parameters (a gradient it leaves on another parameter is discarded), which steps them with its
own AdamW moments. This is KD-FFT's "independent" update (``retention.kd_fft``): the
segmentation loss steps encoder + decoder + head, the distillation loss the encoder.

An optimiser whose loss is absent on a step (KD on steps with ``step % kd_every != 0``) does not
step: its moments and its step count (Adam's bias correction) stay as they were. Every
optimiser that steps sees the step's scheduled learning rate times its ``lr_scale`` and clips
its own gradient norm.

Mixed precision: with fp16 one ``GradScaler`` serves every optimiser (PyTorch's multi-optimiser
recipe: scale each loss, unscale / clip / step each optimiser, one ``update`` per iteration);
an inf/nan gradient skips the optimiser that holds it and lowers the scale.

Several processes (``retention.distributed``, torchrun): right after each loss's backward the
gradients of that loss's optimiser are averaged over the ranks, so every rank clips and steps
the same gradients and the replicas stay identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from .distributed import average_gradients

__all__ = ["OptimizerSpec", "StageOptimizers", "MAIN"]

MAIN = "main"  # the name of a stage's only optimiser when it declares none


@dataclass(frozen=True)
class OptimizerSpec:
    """One named optimiser of a stage.

    Attributes:
        params: names (keys of the stage's ``params``) this optimiser steps; a parameter may
            belong to several optimisers (KD-FFT's encoder).
        lr_scale: its learning rate is the stage's scheduled learning rate times this.
        weight_decay: AdamW weight decay; ``None`` = the stage's ``weight_decay``.
    """

    params: tuple
    lr_scale: float = 1.0
    weight_decay: Optional[float] = None


class StageOptimizers:
    """The AdamW optimisers of one stage, their steps and their checkpoint state.

    Args:
        params: ``{name: Parameter}`` the stage trains.
        lr: the stage's base learning rate.
        weight_decay: the stage's AdamW weight decay.
        specs: ``{optimiser name: OptimizerSpec}`` in stepping order; ``None`` = one optimiser
            (``MAIN``) over every parameter.

    Raises:
        ValueError: an optimiser names an unknown parameter or none, a parameter has no
            optimiser, or ``lr_scale`` is not positive.
    """

    def __init__(self, params: Mapping, lr: float, weight_decay: float,
                 specs: Optional[Mapping[str, OptimizerSpec]] = None) -> None:
        import torch

        specs = dict(specs) if specs is not None else {MAIN: OptimizerSpec(tuple(params))}
        if not specs:
            raise ValueError("a stage needs at least one optimiser")
        covered = set()
        for name, spec in specs.items():
            unknown = [k for k in spec.params if k not in params]
            if unknown or not spec.params:
                raise ValueError(f"optimiser {name!r}: unknown or no parameters {unknown[:3]}")
            if not float(spec.lr_scale) > 0:
                raise ValueError(f"optimiser {name!r}: lr_scale must be > 0, got {spec.lr_scale}")
            covered.update(spec.params)
        orphans = [k for k in params if k not in covered]
        if orphans:
            raise ValueError(f"parameter(s) {orphans[:3]} belong to no optimiser")
        self.specs = specs
        self.params = {n: [params[k] for k in s.params] for n, s in specs.items()}
        self.optimizers = {
            n: torch.optim.AdamW(self.params[n], lr=float(lr) * float(s.lr_scale),
                                 weight_decay=float(weight_decay if s.weight_decay is None else s.weight_decay))
            for n, s in specs.items()}
        self._all = list({id(p): p for group in self.params.values() for p in group}.values())

    @property
    def single(self) -> bool:
        return list(self.optimizers) == [MAIN]

    def set_lr(self, lr: float) -> None:
        """Give every optimiser the scheduled learning rate ``lr`` times its ``lr_scale``."""
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = float(lr) * float(self.specs[name].lr_scale)

    def zero_grad(self) -> None:
        for p in self._all:
            p.grad = None

    def backward_and_step(self, loss, precision, grad_clip: float) -> None:
        """Back-propagate the step's loss(es) and step the optimisers they belong to.

        Args:
            loss: a scalar tensor (a stage with one optimiser) or ``{optimiser name: scalar}``;
                back-propagated in the mapping's order, the graph kept until the last one.
            precision: the stage's ``Precision`` (scaling, unscaling, clipping).
            grad_clip: per-optimiser gradient-norm bound (0: none).

        Raises:
            ValueError: a bare loss with several optimisers, or a loss for an unknown optimiser.
        """
        if not isinstance(loss, Mapping):
            if len(self.optimizers) != 1:
                raise ValueError(f"a stage with optimisers {list(self.optimizers)} needs {{name: loss}} from its step")
            loss = {next(iter(self.optimizers)): loss}
        unknown = [n for n in loss if n not in self.optimizers]
        if unknown:
            raise ValueError(f"loss for unknown optimiser(s) {unknown}; the stage has {list(self.optimizers)}")
        if len(loss) == 1:
            (name, value), = loss.items()
            precision.backward(value)
            average_gradients(self.params[name])
            precision.step(self.optimizers[name], self.params[name], grad_clip)
            return
        grads, names = {}, list(loss)
        for i, name in enumerate(names):  # every backward before any step: the steps change the weights in place
            precision.backward(loss[name], retain_graph=i < len(names) - 1)
            average_gradients(self.params[name])
            grads[name] = [p.grad for p in self.params[name]]
            self.zero_grad()  # what this loss left on other optimisers' parameters is not theirs
        for name, opt in self.optimizers.items():
            if name not in grads:
                continue
            for p, g in zip(self.params[name], grads[name]):
                p.grad = g
            precision.step(opt, self.params[name], grad_clip, update=False)
            self.zero_grad()
        precision.update()

    # -- checkpoint ----------------------------------------------------------------------------

    def state_payload(self) -> dict:
        """``{"optimizer": state}`` for a single optimiser (the checkpoint layout since the start),
        ``{"optimizers": {name: state}}`` for several."""
        if self.single:
            return {"optimizer": self.optimizers[MAIN].state_dict()}
        return {"optimizers": {n: opt.state_dict() for n, opt in self.optimizers.items()}}

    def load_payload(self, payload: Mapping, path: Path, folder: Path) -> None:
        """Restore the optimiser states of a checkpoint written by ``state_payload``.

        Raises:
            InputError: the checkpoint holds other optimisers (e.g. ``retention.kd_update``
                changed between cancel and resume).
        """
        from ..errors import InputError

        saved = {MAIN: payload["optimizer"]} if "optimizer" in payload else dict(payload.get("optimizers") or {})
        if set(saved) != set(self.optimizers):
            raise InputError(path, f"stage was trained with other settings (optimisers {sorted(saved)}, now "
                                   f"{sorted(self.optimizers)}; see retention.kd_update); restore them or delete "
                                   f"{folder} to restart this stage")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(saved[name])
