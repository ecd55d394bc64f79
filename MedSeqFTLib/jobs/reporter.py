"""The progress interface that every long-running library function reports through.

Library code never prints progress itself: it calls a ``Reporter``. The command line gives
it a console reporter (a progress bar on stderr); a background job gives it one that also
appends to ``events.jsonl`` (see ``MedSeqFTLib.jobs``); tests give ``NullReporter``.
"""

from __future__ import annotations

import sys
import time
from typing import Mapping, Optional

from ..errors import Cancelled

__all__ = ["Reporter", "NullReporter", "ConsoleReporter"]


class Reporter:
    """Base reporter: remembers a cancel request; subclasses decide where progress goes.

    ``progress`` is called once per step of a stage (``step`` counts from 1 to ``total``).
    ``check_cancel`` is called by training loops at safe points (after a step, after a
    checkpoint) and raises ``Cancelled`` once a stop was requested.
    """

    def __init__(self) -> None:
        self._cancel = False

    def request_cancel(self) -> None:
        self._cancel = True

    @property
    def cancel_requested(self) -> bool:
        return self._cancel

    def check_cancel(self) -> None:
        if self._cancel:
            raise Cancelled("cancelled at a safe point; rerun with --resume to continue")

    def progress(self, stage: str, task: Optional[str], step: int, total: int,
                 losses: Optional[Mapping[str, float]] = None, message: Optional[str] = None) -> None:
        pass

    def log(self, message: str, level: str = "info", stage: Optional[str] = None, task: Optional[str] = None) -> None:
        pass


class NullReporter(Reporter):
    """Reports nothing; cancel requests still work."""


class ConsoleReporter(Reporter):
    """A one-line progress bar per stage on ``stream`` (stderr), logs on their own lines.

    The ETA is the mean measured step time of the current stage times the steps left.
    """

    def __init__(self, stream=None, min_interval_s: float = 0.2) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval_s = min_interval_s
        self._key = None
        self._t0 = 0.0
        self._last = 0.0
        self._open_line = False

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def progress(self, stage, task, step, total, losses=None, message=None):
        now = time.monotonic()
        key = (stage, task)
        if key != self._key:
            self._end_line()
            self._key, self._t0, self._last = key, now, 0.0
        if step < total and now - self._last < self.min_interval_s:
            return
        self._last = now
        frac = step / total if total else 1.0
        elapsed = now - self._t0
        eta = elapsed / step * (total - step) if step else float("nan")
        bar = "#" * int(24 * frac)
        loss_txt = " ".join(f"{k}={v:.4f}" for k, v in (losses or {}).items())
        label = f"{stage}" + (f"[{task}]" if task else "")
        line = f"\r{label:<24} [{bar:<24}] {step}/{total} eta {eta:5.0f}s {loss_txt}"
        if self.stream.isatty() if hasattr(self.stream, "isatty") else False:
            self.stream.write(line)
            self._open_line = True
        elif step == total or step == 1 or now - self._t0 > 0:
            # not a terminal: one line per report, throttled by min_interval_s
            self.stream.write(line.lstrip("\r") + "\n")
        if step >= total:
            self._end_line()
        self.stream.flush()

    def log(self, message, level="info", stage=None, task=None):
        self._end_line()
        prefix = "" if level == "info" else f"{level}: "
        self.stream.write(f"{prefix}{message}\n")
        self.stream.flush()
