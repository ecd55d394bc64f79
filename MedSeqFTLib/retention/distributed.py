"""Several processes (GPUs, nodes) under ``torchrun``: process group, gradient averaging, rank 0 writes.

``torchrun --nproc_per_node N -m MedSeqFTLib refine WS`` starts N copies of the command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in their environment. ``init_from_env`` turns them into a
``torch.distributed`` process group (NCCL on CUDA, Gloo on the CPU) and picks the rank's
device (``cuda:LOCAL_RANK``). Without those variables (or with ``WORLD_SIZE=1``) nothing here
does anything: the single-process path is the default and unchanged.

What the other modules take from here (``retention.trainer``, ``sequence.runner``, the CLI):

* ``rank()``, ``world_size()``, ``is_main()`` read ``torch.distributed``'s own state (no
  module-level configuration of ours);
* ``average_gradients(params)``: after each backward every rank's gradients are replaced by
  their mean over the ranks (one coalesced ``all_reduce`` per optimiser, as
  ``DistributedDataParallel``'s buckets do). The stages back-propagate several losses per step
  over shared graphs (KD-FFT's independent update: two backwards, each stepping its own
  optimiser), which DDP's reducer does not support; averaging after each backward gives the
  same gradients DDP gives and works for every stage. Only the stage's trainable parameters are
  reduced: LoRA-KD reduces the LoRA weights alone, frozen teachers and bases are never touched.
* ``control(flags)``: one tiny ``all_reduce(MAX)`` per step so that every rank checkpoints and
  stops (cancel) at the same step;
* ``main_first(fn)``: rank 0 runs ``fn`` (which may write the workspace, e.g. MDS selection or
  the preprocessing cache), the others wait at a barrier and then read what it wrote.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Callable, Mapping, Sequence

from ..errors import InputError

__all__ = ["launched_by_torchrun", "init_from_env", "shutdown", "rank", "world_size", "is_main", "barrier",
           "average_gradients", "broadcast_params", "control", "main_first", "check_same", "gather_tensors",
           "TIMEOUT_S"]

# Rank 0 alone runs MDS selection, validation and the model writes while the others wait at a
# barrier: the collective timeout must cover that (a dead rank is noticed by torchrun at once).
TIMEOUT_S = float(os.environ.get("MEDSEQFT_DDP_TIMEOUT_S", 4 * 3600))


def launched_by_torchrun() -> bool:
    """True when this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist is not None else 0


def world_size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist is not None else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    dist = _dist()
    if dist is not None:
        dist.barrier()


def init_from_env(device: str = "auto"):
    """Join the process group ``torchrun`` described in the environment; returns this rank's device.

    Args:
        device: the ``--device`` request: ``auto`` (CUDA when available, else CPU), ``cuda``
            or ``cpu``. ``cuda:N`` is refused: under torchrun each rank uses ``cuda:LOCAL_RANK``.

    Returns:
        ``torch.device``: ``cuda:LOCAL_RANK`` (NCCL) or ``cpu`` (Gloo).

    Raises:
        InputError: the torchrun variables are incomplete, ``cuda:N`` or ``mps`` was asked for,
            CUDA was asked for but is missing, or more ranks run on this node than it has GPUs.
    """
    import torch
    import torch.distributed as dist

    missing = [k for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise InputError("torchrun", f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} but {', '.join(missing)} not set; "
                                     "start several processes with 'torchrun --nproc_per_node N -m MedSeqFTLib ...'")
    name = (device or "auto").strip()
    if name not in ("auto", "cuda", "cpu"):
        raise InputError("--device", f"{name!r} cannot be used under torchrun: use auto, cuda or cpu "
                                     "(each rank takes cuda:LOCAL_RANK)")
    use_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    local = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    if use_cuda:
        if not torch.cuda.is_available():
            raise InputError("--device", "cuda requested under torchrun but CUDA is not available; use --device cpu")
        n = torch.cuda.device_count()
        if local_world > n or local >= n:
            raise InputError("--nproc_per_node", f"{local_world} processes on this node but only {n} CUDA device(s); "
                                                 f"use --nproc_per_node {n} (one process per GPU)")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=TIMEOUT_S))
    return dev


def shutdown() -> None:
    dist = _dist()
    if dist is not None:
        dist.destroy_process_group()


def _coalesced_all_reduce(tensors: Sequence, op_avg: bool) -> None:
    """In-place sum (then mean when ``op_avg``) of same-dtype ``tensors`` over the ranks, one message."""
    import torch
    import torch.distributed as dist

    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    if op_avg:
        flat /= world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def average_gradients(params: Sequence) -> None:
    """Replace each parameter's ``.grad`` by its mean over the ranks (no-op with one process).

    A parameter without a gradient on some ranks counts as zero there; one without a gradient on
    every rank keeps ``grad = None`` (AdamW then leaves it alone, as in one process).
    """
    import torch

    if world_size() == 1 or not params:
        return
    has = torch.tensor([0.0 if p.grad is None else 1.0 for p in params], device=params[0].device)
    _coalesced_all_reduce([has], op_avg=False)
    live = [p for p, h in zip(params, has.tolist()) if h > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict = {}
    for p in live:
        by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        _coalesced_all_reduce(grads, op_avg=True)


def broadcast_params(params: Mapping) -> None:
    """Copy rank 0's values of ``params`` to every rank (as DDP does when it wraps a module)."""
    import torch

    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for p in params.values():
            dist.broadcast(p.data, src=0)


def control(*flags: bool) -> list[bool]:
    """Each flag OR-ed over the ranks (one small ``all_reduce(MAX)``); the flags themselves with one process."""
    import torch
    import torch.distributed as dist

    if world_size() == 1:
        return [bool(f) for f in flags]
    backend = dist.get_backend()
    dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def gather_tensors(t) -> list:
    """``[t of rank 0, t of rank 1, ...]`` (same shape and dtype everywhere; CPU tensors are moved for NCCL)."""
    import torch
    import torch.distributed as dist

    if world_size() == 1:
        return [t]
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    src = t.to(dev)
    out = [torch.empty_like(src) for _ in range(world_size())]
    dist.all_gather(out, src)
    return [o.cpu() for o in out]


def main_first(fn: Callable):
    """Rank 0 runs ``fn()`` first (it may write files), the others run it after a barrier; returns ``fn()``.

    If rank 0 fails, its exception propagates and torchrun stops the waiting ranks.
    """
    if world_size() == 1:
        return fn()
    if is_main():
        out = fn()
        barrier()
        return out
    barrier()
    return fn()


def check_same(value: str, what: str) -> None:
    """Raise on every rank when the ranks disagree on ``value`` (e.g. the workspace's manifest).

    Raises:
        InputError: naming the ranks' values.
    """
    import torch.distributed as dist

    if world_size() == 1:
        return
    values = [None] * world_size()
    dist.all_gather_object(values, str(value))
    if len(set(values)) > 1:
        shown = ", ".join(f"rank {r}: {v[:80]}" for r, v in enumerate(values))
        raise InputError("torchrun", f"the ranks disagree on {what} ({shown}); every rank must see the same "
                                     "workspace (a shared folder on every node)")


class ShardedSource:
    """Rank ``r`` of ``n`` reads batch ``i * n + r`` of ``source`` as its batch ``i``.

    Batch ``i`` of the stage (the global batch) is therefore batches ``i*n .. i*n+n-1`` of the
    one-process stream: disjoint over the ranks, fixed by ``(seed, i)``, the same after a resume.
    """

    def __init__(self, source, rank_: int, world: int) -> None:
        self.source, self.rank, self.world = source, int(rank_), int(world)

    def batch_at(self, i: int) -> dict:
        return self.source.batch_at(int(i) * self.world + self.rank)

    def next_batch(self) -> dict:  # pragma: no cover - BatchStream reads batch_at
        raise TypeError("ShardedSource is read by index (batch_at)")


def rng_payload() -> dict:
    """Every rank's CPU (and CUDA) RNG state for a checkpoint (collective: call on every rank)."""
    import torch

    out = {"world": world_size()}
    if world_size() > 1:
        out["rng_cpu_ranks"] = gather_tensors(torch.get_rng_state())
        if torch.cuda.is_available() and _dist().get_backend() == "nccl":
            out["rng_cuda_ranks"] = gather_tensors(torch.cuda.get_rng_state())
    return out


def restore_rng(payload: Mapping, path, folder) -> None:
    """Set this rank's RNG from a checkpoint written by ``rng_payload`` (after the plain restore).

    Raises:
        InputError: the checkpoint was written by another number of processes (its batches
            would not continue the same global stream).
    """
    import torch

    saved = int(payload.get("world", 1))
    if saved != world_size():
        raise InputError(path, f"stage checkpoint was written by {saved} process(es), now {world_size()}; resume "
                               f"with the same number of processes or delete {folder} to restart this stage")
    if world_size() > 1:
        torch.set_rng_state(payload["rng_cpu_ranks"][rank()])
        if "rng_cuda_ranks" in payload and torch.cuda.is_available():
            torch.cuda.set_rng_state(payload["rng_cuda_ranks"][rank()])
