"""Batch sources for the stages: indexed streams, loader worker processes, moving to the device.

A stage asks its ``SamplerFactory`` for a source seeded with the stage's data seed and reads
it through ``BatchStream`` from its start step on. Sources with ``batch_at(i)``
(``data.sampling.PatchSampler``) make batch ``i`` depend only on ``(seed, i)``, so the stream
is the same with or without worker processes and after a resume. Sources with only
``next_batch()`` (toy sources in tests) are read in order in the main process.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

__all__ = ["BatchSource", "SamplerFactory", "BatchStream", "to_device", "default_workers"]


class BatchSource(Protocol):
    """Anything with ``next_batch() -> {"image": (B, C, X, Y, Z), "label": (B, 1, X, Y, Z) or None}``;
    ``batch_at(i)`` too for indexed, worker-friendly streams (``data.sampling.PatchSampler``)."""

    def next_batch(self) -> dict: ...


# factory(seed) -> BatchSource
SamplerFactory = Callable[[int], BatchSource]


def default_workers(device, requested: Optional[int] = None) -> int:
    """Loader worker processes: ``requested`` if given, else 0 on the CPU, ``min(8, cpus - 1)`` on CUDA."""
    import os

    if requested is not None:
        return int(requested)
    if getattr(device, "type", str(device)) != "cuda":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # each worker builds whole batches; the trainer owns the cores


class _Indexed:
    """``torch.utils.data.IterableDataset`` body: worker w of n yields batches start+w, start+w+n, ..."""

    def __init__(self, source, start: int) -> None:
        self.source, self.start = source, int(start)

    def __iter__(self):
        import torch.utils.data as tud

        info = tud.get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        i = self.start + w
        while True:
            yield self.source.batch_at(i)
            i += n


class BatchStream:
    """Batches ``start``, ``start + 1``, ... of ``source``, built by ``workers`` processes (0: inline).

    The DataLoader hands out worker results in round-robin order, and worker ``w`` builds the
    batches ``start + w + k * workers``, so the order is exactly the inline order.
    """

    def __init__(self, source, start: int = 0, workers: int = 0, pin_memory: bool = False) -> None:
        self.source = source
        self.index = int(start)
        self._iter = None
        self._loader = None
        if workers > 0 and callable(getattr(source, "batch_at", None)):
            import torch.utils.data as tud

            class _Dataset(_Indexed, tud.IterableDataset):
                pass

            self._loader = tud.DataLoader(_Dataset(source, start), batch_size=None, num_workers=int(workers),
                                          worker_init_fn=_worker_init, pin_memory=pin_memory, prefetch_factor=2)
            self._iter = iter(self._loader)

    def next_batch(self) -> dict:
        if self._iter is not None:
            out = next(self._iter)
        elif callable(getattr(self.source, "batch_at", None)):
            out = self.source.batch_at(self.index)
        else:
            out = self.source.next_batch()
        self.index += 1
        return out

    def close(self) -> None:
        """Stop the worker processes (also done when the stream is garbage-collected)."""
        self._iter = None
        self._loader = None


def to_device(batch: dict, device, need_label: bool = True):
    """``(image float32 (B, C, X, Y, Z), label int64 (B, 1, X, Y, Z) or None)`` on ``device``.

    Raises:
        ValueError: ``need_label`` and the batch has no label.
    """
    import torch

    image = torch.as_tensor(batch["image"]).to(device=device, dtype=torch.float32, non_blocking=True)
    label = batch.get("label")
    if label is None:
        if need_label:
            raise ValueError("a segmentation batch needs labels")
        return image, None
    return image, torch.as_tensor(label).to(device=device, dtype=torch.long, non_blocking=True)
