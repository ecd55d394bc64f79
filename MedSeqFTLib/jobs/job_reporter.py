"""The reporter of a job: fans progress out to ``events.jsonl``, ``status.json`` and the console.

Progress events are throttled (``min_event_interval_s``) except the first and last step of a
stage, so a 25,000-iteration stage does not write 25,000 lines; ``status.json`` (an atomic
rewrite) is refreshed at most every ``status_interval_s``. Cancel requests arrive either as
``request_cancel()`` (the SIGTERM handler calls it) or as the job folder's ``cancel`` file,
which ``check_cancel`` looks for at most every ``cancel_poll_s``.
"""

from __future__ import annotations

import time
from typing import Mapping, Optional

from .eta import EtaEstimator
from .events import EventWriter
from .job_folder import JobFolder
from .reporter import Reporter

__all__ = ["JobReporter"]


class JobReporter(Reporter):
    """Reporter writing a job's events and status, optionally mirrored to ``console``.

    Args:
        job: the job folder (its ``status.json`` must exist).
        writer: the open event writer of ``job.events_path``.
        console: another reporter (e.g. ``ConsoleReporter``) that also receives every
            report; ``None`` for a detached job, whose stderr is a log file anyway.
        min_event_interval_s: least time between two progress events of one stage.
        status_interval_s: least time between two progress updates of ``status.json``.
        cancel_poll_s: least time between two looks for the ``cancel`` file.
    """

    def __init__(self, job: JobFolder, writer: EventWriter, console: Optional[Reporter] = None,
                 min_event_interval_s: float = 0.25, status_interval_s: float = 1.0,
                 cancel_poll_s: float = 0.5, clock=time.monotonic) -> None:
        super().__init__()
        self.job = job
        self.writer = writer
        self.console = console
        self.min_event_interval_s = min_event_interval_s
        self.status_interval_s = status_interval_s
        self.cancel_poll_s = cancel_poll_s
        self.clock = clock
        self.eta = EtaEstimator(clock=clock)
        self._last_event: dict[tuple, float] = {}
        self._last_status = -float("inf")
        self._last_poll = -float("inf")
        self.last_progress: Optional[dict] = None

    # cancel -----------------------------------------------------------------------------
    def request_cancel(self) -> None:
        super().request_cancel()
        if self.console is not None:
            self.console.request_cancel()

    def check_cancel(self) -> None:
        now = self.clock()
        if not self.cancel_requested and now - self._last_poll >= self.cancel_poll_s:
            self._last_poll = now
            if self.job.cancel_requested():
                self.request_cancel()
        super().check_cancel()

    # reports ----------------------------------------------------------------------------
    def plan(self, stages) -> None:
        stages = [tuple(s) for s in stages]
        self.eta.plan(stages)
        if self.console is not None:
            self.console.plan(stages)

    def progress(self, stage: str, task: Optional[str], step: int, total: int,
                 losses: Optional[Mapping[str, float]] = None, message: Optional[str] = None) -> None:
        eta = self.eta.update(stage, task, step, total)
        now = self.clock()
        key = (stage, task)
        last = self._last_event.get(key)
        if last is None or step <= 1 or step >= total or now - last >= self.min_event_interval_s:
            self._last_event[key] = now
            ev = self.writer.emit("progress", stage=stage, task=task, step=step, total=total,
                                  losses=losses, eta_s=eta, message=message)
            self.last_progress = {k: ev[k] for k in ("stage", "task", "step", "total", "eta_s", "time")}
            if step >= total or now - self._last_status >= self.status_interval_s:
                self._last_status = now
                self.job.update_status(progress=self.last_progress)
        if self.console is not None:
            self.console.progress(stage, task, step, total, losses=losses, message=message)

    def log(self, message: str, level: str = "info", stage: Optional[str] = None, task: Optional[str] = None) -> None:
        self.writer.emit("log", stage=stage, task=task, message=str(message), level=level)
        if self.console is not None:
            self.console.log(message, level=level, stage=stage, task=task)
