"""What a training stage records about itself: its loss curve and its peak memory (``retention.trainer``)."""

from __future__ import annotations

from typing import Mapping, Optional

__all__ = ["CURVE_POINTS", "LossCurve", "MemoryMeter"]

CURVE_POINTS = 200  # loss curves are kept as at most ~this many window means


class LossCurve:
    """Window means of each loss: one point per ``every`` steps (``[[step, mean], ...]``)."""

    def __init__(self, total: int, points: Optional[dict] = None) -> None:
        self.every = max(1, int(total) // CURVE_POINTS)
        self.points: dict = {k: [list(p) for p in v] for k, v in (points or {}).items()}
        self._sums: dict = {}
        self._counts: dict = {}  # per loss: a loss may be absent on some steps (kd_every > 1)

    def add(self, step: int, losses: Mapping[str, float]) -> None:
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
            self._counts[k] = self._counts.get(k, 0) + 1
        if step % self.every == 0:
            self.flush(step)

    def flush(self, step: int) -> None:
        for k, s in self._sums.items():
            self.points.setdefault(k, []).append([int(step), s / self._counts[k]])
        self._sums, self._counts = {}, {}


class MemoryMeter:
    """Peak memory of a stage: CUDA ``max_memory_allocated``, else the process's peak RSS.

    On the CPU the peak is sampled (psutil RSS, every ``sample`` calls) and combined with
    ``ru_maxrss``; it is the process's peak while the stage ran, which includes what was
    allocated before it.
    """

    def __init__(self, device) -> None:
        import torch

        self.cuda = getattr(device, "type", str(device)) == "cuda"
        self.kind = "cuda_max_allocated" if self.cuda else "cpu_peak_rss"
        self.peak = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        self.device = device
        try:
            import psutil

            self._proc = psutil.Process()
        except ImportError:  # psutil is optional; ru_maxrss alone is still the process peak
            self._proc = None
        self.sample()

    def sample(self) -> None:
        if self.cuda:
            import torch

            self.peak = max(self.peak, int(torch.cuda.max_memory_allocated(self.device)))
        elif self._proc is not None:
            self.peak = max(self.peak, int(self._proc.memory_info().rss))

    def result(self) -> int:
        self.sample()
        if not self.cuda:
            import resource
            import sys

            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            # Linux reports KiB, macOS bytes
            maxrss_bytes = maxrss if sys.platform == "darwin" else maxrss * 1024
            if self._proc is None:
                self.peak = max(self.peak, maxrss_bytes)
        return self.peak
