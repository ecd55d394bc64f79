"""The training loop every K&G RFT stage shares: AdamW steps, progress, cancel, checkpoints.

Every stage follows the workspace's ``RecipeConfig``: the learning rate decays over the stage
(poly by default, as nnU-Net), the gradient norm is clipped, the forward pass runs under
autocast on CUDA (``retention.precision``), and batches come from indexed streams
(``retention.batches.BatchStream``), built by loader worker processes where configured.

A stage owns a folder ``WS/tasks/<task>/stages/<stage>/``:

* ``checkpoint.pt`` while it runs: trainable tensors, the state of every optimiser of the
  stage (``"optimizer"``, or ``"optimizers": {name: state}`` for a stage with several, see
  ``retention.optimizers``), the fp16 loss scaler, step and RNG state (a dict of tensors,
  numbers and lists: ``torch.load(weights_only=True)`` reads it), written atomically every
  ``checkpoint_every_s`` seconds, on cancel and at the end;
* ``result.safetensors`` once it finished: the trained tensors (the checkpoint is then removed);
* ``state.json``: ``{"stage", "task", "step", "total", "done", "time_s", "peak_memory_bytes",
  "memory_kind", "losses": {name: [[step, mean], ...]}, "runs"}`` (written with each checkpoint).

A finished stage is never trained again: ``run_stage`` loads its result and returns. A stage
interrupted half-way continues from its last checkpoint. Data samplers are re-seeded from
batch index: a resumed stage draws exactly the patches an uninterrupted run would have drawn
(toy sources with only ``next_batch`` are re-seeded from ``(seed, step)`` instead).

Under torchrun (``retention.distributed``) every rank runs this loop in lock-step: rank ``r``
of ``n`` reads batch ``i * n + r`` of each stream, the gradients are averaged after each
backward, one small all-reduce per step decides checkpoint and cancel for every rank, and rank
0 alone writes the checkpoint (with every rank's RNG state), ``state.json`` and the result.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from ..errors import Cancelled
from ..io.atomic import atomic_write_json, atomic_write_with, read_json
from . import distributed as ddp
from .optimizers import OptimizerSpec, StageOptimizers
from .stage_metrics import LossCurve, MemoryMeter  # noqa: F401 (part of this module's interface)

__all__ = ["StageSpec", "StageLog", "LossCurve", "MemoryMeter", "run_stage", "derive_seed", "stage_state",
           "OptimizerSpec"]

def derive_seed(*parts) -> int:
    """A 31-bit seed from any printable parts (config seed, task, stage, step), stable across runs."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class StageSpec:
    """Where and how long a stage runs.

    Attributes:
        stage: event stage name (``fft``, ``kd_fft``, ``lora_kd``).
        task: task name (for progress events).
        folder: the stage folder (checkpoints, result, state).
        iterations: optimizer steps.
        lr, weight_decay: AdamW settings.
        checkpoint_every_s: seconds between periodic checkpoints.
        seed: the stage seed (``derive_seed(config seed, task, stage)``).
        recipe: learning-rate schedule, clipping, AMP; ``None`` = constant lr, no clipping, fp32.
        data_seed: seed of the stage's batch streams and of its auxiliary (deep-supervision)
            heads (default ``seed``); stages that share it draw identical task patches and
            auxiliary heads (FFT, KD-FFT and the benchmark's baselines of the same task, for
            paired comparisons).
        workers: loader worker processes per stream (0: batches built in the training process).
    """

    stage: str
    task: str
    folder: Path
    iterations: int
    lr: float
    weight_decay: float
    checkpoint_every_s: float
    seed: int
    recipe: Optional[object] = None
    data_seed: Optional[int] = None
    workers: int = 0


@dataclass
class StageLog:
    """What a stage did, for ``record.json``."""

    stage: str
    iterations: int
    time_s: float
    peak_memory_bytes: int
    memory_kind: str
    losses: dict
    runs: int
    resumed: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"iterations": self.iterations, "time_s": round(self.time_s, 3), "peak_memory_bytes": self.peak_memory_bytes,
                "memory_kind": self.memory_kind, "losses": self.losses, "runs": self.runs, **self.extra}


def stage_state(folder: Path) -> Optional[dict]:
    """The stage's ``state.json`` or ``None`` when it never started."""
    path = Path(folder) / "state.json"
    return read_json(path) if path.exists() else None


def _save_checkpoint(folder: Path, params: Mapping, optimizer, step: int, device, precision) -> None:
    """``optimizer``: the stage's ``StageOptimizers`` (or one plain torch optimizer)."""
    import torch

    opt_state = optimizer.state_payload() if isinstance(optimizer, StageOptimizers) else {"optimizer": optimizer.state_dict()}
    ranks = ddp.rng_payload()  # collective: every rank gathers, rank 0 writes
    if not ddp.is_main():
        return
    payload = {
        **ranks,
        "params": {k: p.detach().cpu().clone() for k, p in params.items()},
        **opt_state,
        "step": int(step),
        "rng_cpu": torch.get_rng_state(),
        "scaler": precision.state_dict(),
    }
    if getattr(device, "type", "") == "cuda":
        payload["rng_cuda"] = torch.cuda.get_rng_state(device)
    atomic_write_with(folder / "checkpoint.pt", lambda tmp: torch.save(payload, tmp))


def _load_checkpoint(folder: Path, params: Mapping, optimizer, device, precision) -> int:
    import torch

    from ..errors import InputError

    path = folder / "checkpoint.pt"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises anything on damaged bytes (IndexError seen)
        raise InputError(path, f"unreadable stage checkpoint ({exc.__class__.__name__}); delete {folder} to restart this stage") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("params"), dict):
        raise InputError(path, f"not a stage checkpoint (no 'params'); delete {folder} to restart this stage")
    _copy_checked(payload["params"], params, path, folder)
    if isinstance(optimizer, StageOptimizers):
        optimizer.load_payload(payload, path, folder)
    else:
        optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng_cpu"])
    precision.load_state_dict(payload.get("scaler") or {})
    if "rng_cuda" in payload and getattr(device, "type", "") == "cuda":
        torch.cuda.set_rng_state(payload["rng_cuda"], device)
    ddp.restore_rng(payload, path, folder)
    return int(payload["step"])


def _load_result(folder: Path, params: Mapping) -> None:
    from ..models.checkpoint import load_safetensors

    path = folder / "result.safetensors"
    tensors, _ = load_safetensors(path)
    _copy_checked(tensors, params, path, folder)


def _copy_checked(saved: Mapping, params: Mapping, path: Path, folder: Path) -> None:
    """Copy saved tensors into ``params`` after checking names and shapes.

    A stage resumed with other settings (e.g. another LoRA rank, set in the Slicer panel
    between Cancel and Resume) has other shapes: ``copy_`` would fail, or silently broadcast.

    Raises:
        InputError: names or shapes differ from the stage's parameters.
    """
    import torch

    from ..errors import InputError

    if set(saved) != set(params):
        raise InputError(path, f"checkpoint does not match the stage's parameters; delete {folder} to restart this stage")
    for k, p in params.items():
        if tuple(saved[k].shape) != tuple(p.shape):
            raise InputError(path, f"stage was trained with other settings ({k}: shape {tuple(saved[k].shape)}, "
                                   f"now {tuple(p.shape)}); restore them or delete {folder} to restart this stage")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(saved[k].to(p.device))


class _Streams:
    """Opens a stage's batch streams at its start step and closes them (and their workers) at the end."""

    def __init__(self, spec: StageSpec, start: int, device) -> None:
        self.spec, self.start, self.device, self.open = spec, int(start), device, []

    def __call__(self, factory, tag: str, start: Optional[int] = None, data_seed: Optional[int] = None):
        """``BatchStream`` of ``factory(seed)``; ``tag`` names the stream.

        ``start``: first batch index (default the stage's start step; a stream read only on some
        steps starts where those steps left it). ``data_seed``: seed instead of the stage's.
        """
        from .batches import BatchStream

        spec = self.spec
        start = self.start if start is None else int(start)
        base = data_seed if data_seed is not None else spec.data_seed if spec.data_seed is not None else spec.seed
        source = factory(derive_seed(base, tag))
        if not callable(getattr(source, "batch_at", None)):  # an in-order toy source: a fresh seed per (re)start
            source = factory(derive_seed(spec.seed, tag, start, *((ddp.rank(),) if ddp.world_size() > 1 else ())))
        elif ddp.world_size() > 1:
            source = ddp.ShardedSource(source, ddp.rank(), ddp.world_size())
        stream = BatchStream(source, start, int(spec.workers), pin_memory=getattr(self.device, "type", "") == "cuda")
        self.open.append(stream)
        return stream

    def close(self) -> None:
        for stream in self.open:
            stream.close()
        self.open = []


def run_stage(spec: StageSpec, params: Mapping, make_step: Callable, reporter, device, modules=(),
              optimizers: Optional[Mapping[str, OptimizerSpec]] = None) -> StageLog:
    """Train ``params`` with AdamW, or load the stage's result if it already finished.

    Args:
        spec: the stage's folder, length, optimizer settings and recipe.
        params: ``{name: Parameter}`` the optimizer(s) update (and the checkpoint stores).
        make_step: ``make_step(start_step, streams)`` returns ``step_fn(step) -> (loss, {name: float})``;
            ``step_fn`` computes the loss under autocast: a scalar tensor, or with ``optimizers``
            ``{optimiser name: scalar}`` (a name left out does not step); the loop zeroes
            gradients, back-propagates, clips and steps (``retention.optimizers``).
            ``streams(factory, tag, start=None, data_seed=None)`` opens a batch stream that
            starts at ``start_step`` (or ``start``), seeded from the stage's data seed (or ``data_seed``).
        reporter: progress / cancel (``jobs.reporter.Reporter``).
        device: torch device the parameters live on.
        modules: modules to put in train mode for the stage.
        optimizers: ``{name: OptimizerSpec}`` for a stage with several optimisers (each with
            its own AdamW state, all checkpointed); ``None`` = one AdamW over ``params``.

    Returns:
        The ``StageLog`` (accumulated over resumed runs).

    Raises:
        errors.Cancelled: a cancel request; the checkpoint was written first.
    """
    import torch

    folder = Path(spec.folder)
    if ddp.is_main():
        folder.mkdir(parents=True, exist_ok=True)
    ddp.barrier()  # every rank reads the stage's files as rank 0 left them
    state = stage_state(folder) or {}
    if state.get("done"):
        _load_result(folder, params)
        return StageLog(spec.stage, int(state["total"]), float(state["time_s"]), int(state["peak_memory_bytes"]),
                        state["memory_kind"], state["losses"], int(state.get("runs", 1)), resumed=True)

    from ..config import RecipeConfig
    from .precision import Precision

    recipe = spec.recipe if spec.recipe is not None else RecipeConfig(schedule="constant", grad_clip=0.0, amp="off")
    precision = Precision(recipe.amp, device)
    for m in modules:
        m.train()
    optimizer = StageOptimizers(params, spec.lr, spec.weight_decay, optimizers)
    total = int(spec.iterations)
    start = 0
    resumed = (folder / "checkpoint.pt").exists()
    if resumed:
        start = _load_checkpoint(folder, params, optimizer, device, precision)
    else:
        torch.manual_seed(derive_seed(spec.seed, "init-rng", *((ddp.rank(),) if ddp.world_size() > 1 else ())))
        ddp.broadcast_params(params)  # identical replicas from the start, as DDP does
    curve = LossCurve(total, state.get("losses") if resumed else None)
    prior_time = float(state.get("time_s", 0.0)) if resumed else 0.0
    runs = int(state.get("runs", 0)) + 1 if resumed else 1
    meter = MemoryMeter(device)
    prior_peak = int(state.get("peak_memory_bytes", 0)) if resumed else 0
    t0 = time.perf_counter()
    last_ckpt = time.monotonic()

    def write_state(step: int, done: bool) -> dict:
        new_state = {"stage": spec.stage, "task": spec.task, "step": step, "total": total, "done": done,
                     "time_s": prior_time + time.perf_counter() - t0,
                     "peak_memory_bytes": max(prior_peak, meter.result()), "memory_kind": meter.kind,
                     "losses": curve.points, "runs": runs}
        if ddp.is_main():
            atomic_write_json(folder / "state.json", new_state)
        return new_state

    def checkpoint(step: int) -> None:
        _save_checkpoint(folder, params, optimizer, step, device, precision)
        write_state(step, False)

    streams = _Streams(spec, start, device)
    step_fn = make_step(start, streams)
    step = start
    try:
        while step < total:
            optimizer.set_lr(float(spec.lr) * recipe.lr_factor(step, total))
            optimizer.zero_grad()
            with precision.autocast():
                loss, losses = step_fn(step)
            optimizer.backward_and_step(loss, precision, float(recipe.grad_clip))
            del loss  # a graph kept for a second backward is freed here, not during the next forward
            step += 1
            curve.add(step, losses)
            if step % 16 == 0:
                meter.sample()
            reporter.progress(spec.stage, spec.task, step, total, losses=losses)
            due, stop = ddp.control(time.monotonic() - last_ckpt >= spec.checkpoint_every_s and step < total,
                                    reporter.cancel_requested)
            if due:
                checkpoint(step)
                last_ckpt = time.monotonic()
            if stop:
                reporter.request_cancel()  # ranks without the job's reporter stop at the same step
            reporter.check_cancel()
    except (Cancelled, KeyboardInterrupt):
        curve.flush(step)
        checkpoint(step)
        raise
    finally:
        streams.close()
    curve.flush(step)
    from ..models.checkpoint import save_safetensors

    if ddp.is_main():
        save_safetensors(folder / "result.safetensors", {k: p.detach() for k, p in params.items()},
                         {"kind": "stage_result", "stage": spec.stage, "task": spec.task, "step": step})
    final = write_state(step, True)
    if ddp.is_main():
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    ddp.barrier()
    return StageLog(spec.stage, total, float(final["time_s"]), int(final["peak_memory_bytes"]), meter.kind,
                    curve.points, runs, resumed=resumed,
                    extra={"precision": precision.name, "schedule": recipe.schedule, "grad_clip": float(recipe.grad_clip),
                           "workers": int(spec.workers)})
