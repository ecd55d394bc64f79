"""The progress interface that every long-running library function reports through.

Library code never prints progress itself: it calls a ``Reporter``. The command line gives
it a console reporter (a progress bar on stderr); a background job gives it one that also
appends to ``events.jsonl`` (see ``MedSeqFTLib.jobs``); tests give ``NullReporter``.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Mapping, Optional, Sequence

from ..errors import Cancelled
from .eta import EtaEstimator

__all__ = ["Reporter", "NullReporter", "ConsoleReporter", "JobReporter"]


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

    def plan(self, stages: Iterable[Sequence]) -> None:
        """Announce the stages still to run after the current one as ``(stage, task, total)``
        triples, so the ETA can include them (see ``jobs/eta.py``). Optional for callers."""


class NullReporter(Reporter):
    """Reports nothing; cancel requests still work."""


def _fmt_eta(eta_s: Optional[float]) -> str:
    if eta_s is None:
        return "    ?"
    eta_s = int(round(eta_s))
    if eta_s < 3600:
        return f"{eta_s // 60:2d}:{eta_s % 60:02d}"
    return f"{eta_s // 3600}h{eta_s % 3600 // 60:02d}"


class ConsoleReporter(Reporter):
    """A one-line progress bar per stage on ``stream`` (stderr), logs on their own lines.

    The ETA comes from measured step times (``jobs/eta.py``): recent step durations of the
    current stage times the steps left, plus announced later stages.
    """

    def __init__(self, stream=None, min_interval_s: float = 0.2, log_interval_s: float = 10.0) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval_s = min_interval_s
        self.log_interval_s = log_interval_s
        self._logged = 0
        self._key = None
        self._t0 = 0.0
        self._last = 0.0
        self._open_line = False
        self.eta = EtaEstimator()

    def plan(self, stages):
        self.eta.plan(stages)

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def progress(self, stage, task, step, total, losses=None, message=None):
        now = time.monotonic()
        eta = self.eta.update(stage, task, step, total)
        key = (stage, task)
        if key != self._key:
            self._end_line()
            self._key, self._t0, self._last, self._logged = key, now, 0.0, 0
        if step < total and now - self._last < self.min_interval_s:
            return
        self._last = now
        frac = step / total if total else 1.0
        bar = "#" * int(24 * frac)
        loss_txt = " ".join(f"{k}={v:.4f}" for k, v in (losses or {}).items())
        label = f"{stage}" + (f"[{task}]" if task else "")
        line = f"\r{label:<24} [{bar:<24}] {step}/{total} eta {_fmt_eta(eta)} {loss_txt}"
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if tty:
            self.stream.write(line)
            self._open_line = True
        elif step >= total or now - self._t0 >= self.log_interval_s * (1 + self._logged):
            # not a terminal (a log file, CI): a line per finished stage and every
            # log_interval_s, so logs stay short and an early error stays the only line
            self._logged += 1
            self.stream.write(line.lstrip("\r") + "\n")
        if step >= total:
            self._end_line()
        self.stream.flush()

    def log(self, message, level="info", stage=None, task=None):
        self._end_line()
        prefix = "" if level == "info" else f"{level}: "
        self.stream.write(f"{prefix}{message}\n")
        self.stream.flush()


def __getattr__(name):
    # JobReporter lives in its own module (events + status file); re-exported here lazily
    if name == "JobReporter":
        from .job_reporter import JobReporter

        return JobReporter
    raise AttributeError(name)
