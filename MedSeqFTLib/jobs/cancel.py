"""Stopping a running job: graceful first, forced after a timeout; the workspace stays resumable.

1. The job folder's ``cancel`` file is written (works on every platform and for a job whose
   process we cannot signal), and SIGTERM goes to the job's process. Its handler calls
   ``reporter.request_cancel()``; the next ``reporter.check_cancel()`` in a training loop
   (after a step or a checkpoint) raises ``Cancelled``; the runner writes the ``cancelled``
   event and the process exits with code 3.
2. If the process is still alive after ``timeout_s``, SIGKILL goes to its process group
   (a detached job leads its own session, so data-loader workers die with it) and the
   status is marked ``cancelled`` (exit code 3) with a ``cancelled`` event on its behalf.
   What the job wrote last is its newest checkpoint; the workspace lock it leaves behind
   belongs to a dead process and is cleared by the next writer.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Optional

from ..errors import EXIT_CANCELLED, InputError
from .events import EventWriter, last_event, FINAL_EVENTS
from .job_folder import JobFolder, effective_state, list_jobs
from .process import ALIVE, ProcessIdentity, host_name, liveness, send_signal, wait_until_gone

__all__ = ["find_job", "cancel_job"]


def find_job(root: str | Path, job_id: Optional[str] = None) -> JobFolder:
    """The job to cancel: ``job_id`` (a unique prefix is enough) or the one running job.

    Raises:
        InputError: no such job, an ambiguous prefix, no running job, or several running
            jobs and no ``job_id``.
    """
    root = Path(root)
    jobs = list_jobs(root)
    if job_id:
        hits = [j for j in jobs if j["id"] == job_id] or [j for j in jobs if j["id"].startswith(job_id)]
        if not hits:
            raise InputError(root, f"no job {job_id!r}; jobs here: {[j['id'] for j in jobs] or 'none'}")
        if len(hits) > 1:
            raise InputError(root, f"job id {job_id!r} is ambiguous: {[j['id'] for j in hits]}")
        return JobFolder(hits[0]["folder"])
    running = [j for j in jobs if j["effective_state"] in ("starting", "running")]
    if not running:
        raise InputError(root, "no running job to cancel")
    if len(running) > 1:
        raise InputError(root, f"several running jobs, pick one with --job: {[j['id'] for j in running]}")
    return JobFolder(running[0]["folder"])


def _mark_cancelled(job: JobFolder, message: str) -> None:
    last = last_event(job.events_path)
    if last is None or last.get("event") not in FINAL_EVENTS:
        with EventWriter(job.events_path) as writer:
            writer.emit("cancelled", message=message, level="warning", exit_code=EXIT_CANCELLED)
    job.update_status(state="cancelled", exit_code=EXIT_CANCELLED, ended=time.time())


def cancel_job(job: JobFolder, timeout_s: float = 30.0, log=None) -> str:
    """Stop ``job``; returns how: ``"graceful"``, ``"killed"``, ``"already_finished"`` or
    ``"requested"`` (a job on another host: only the cancel file could be written).

    Raises:
        InputError: the job folder has no readable status file.
    """
    record = job.read_status()
    state = effective_state(record)
    if state in ("done", "failed", "cancelled"):
        return "already_finished"
    if state == "died":
        _mark_cancelled(job, "the job's process had already died; marked cancelled")
        return "killed"
    job.request_cancel()
    if not record.get("pid"):
        # still starting: wait briefly for the child to record its pid
        deadline = time.monotonic() + min(timeout_s, 10.0)
        while not record.get("pid") and time.monotonic() < deadline:
            time.sleep(0.05)
            record = job.read_status()
        if not record.get("pid"):
            _mark_cancelled(job, "cancelled before the job started")
            return "killed"
    ident = ProcessIdentity.from_record(record)
    if ident.host and ident.host != host_name():
        return "requested"
    sent = send_signal(ident, signal.SIGTERM) if sys.platform != "win32" else False
    if log:
        log(f"asked job {job.id} (pid {ident.pid}) to stop" + ("" if sent else " (cancel file only)"))
    if wait_until_gone(ident, timeout_s) and _wait_final(job, 2.0):
        return "graceful"
    if liveness(ident) == ALIVE:
        if log:
            log(f"job {job.id} did not stop within {timeout_s:g} s: killing it")
        kill = getattr(signal, "SIGKILL", signal.SIGTERM)
        send_signal(ident, kill, group=record.get("pgid") == ident.pid)
        wait_until_gone(ident, 10.0)
    _mark_cancelled(job, f"killed after not stopping within {timeout_s:g} s")
    return "killed"


def _wait_final(job: JobFolder, timeout_s: float) -> bool:
    # the process is gone; its last event must be final, else it died mid-way
    deadline = time.monotonic() + timeout_s
    while True:
        if job.read_status().get("state") in ("done", "failed", "cancelled"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
