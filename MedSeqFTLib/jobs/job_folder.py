"""One job's folder ``<jobs root>/<job id>/`` and its small ``status.json``.

```
<root>/<id>/status.json    {"id", "command", "argv", "pid", "host", "pid_start", "pgid", "state",
                             "started", "ended", "exit_code", "error", "progress": {stage, task, step,
                             total, eta_s, time}, "log", "cwd"}
<root>/<id>/events.jsonl   see jobs/events.py
<root>/<id>/log.txt        stdout + stderr of a detached job
<root>/<id>/cancel         present = a cancel was requested (portable; SIGTERM is the fast path)
```
``state`` as written by the job is ``starting`` | ``running`` | ``done`` | ``failed`` |
``cancelled``. A reader asks :func:`effective_state`, which also knows ``died``: the file says
``running`` but the process is gone (SIGKILL, power cut, out-of-memory killer) or its pid now
belongs to another process.
"""

from __future__ import annotations

import datetime
import os
import secrets
import time
from pathlib import Path
from typing import Optional

from ..io.atomic import atomic_write_json, read_json, atomic_write_text
from ..errors import InputError
from .process import ALIVE, OTHER_HOST, ProcessIdentity, liveness

__all__ = [
    "JOB_STATES",
    "new_job_id",
    "JobFolder",
    "list_jobs",
    "effective_state",
]

JOB_STATES = ("starting", "running", "done", "failed", "cancelled", "died")
ACTIVE_STATES = ("starting", "running")
STARTING_GRACE_S = 30.0   # a "starting" record without a live pid is given this long to appear


def new_job_id(command: str) -> str:
    """Sortable, unique id: ``20261122-143005-refine-3fa2``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() else "_" for c in command)[:24]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


class JobFolder:
    """Paths and status file of one job."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def cancel_path(self) -> Path:
        return self.path / "cancel"

    def read_status(self) -> dict:
        """The status record; a missing or damaged file raises ``InputError``."""
        record = read_json(self.status_path)
        if not isinstance(record, dict) or "state" not in record:
            raise InputError(self.status_path, "not a job status file (no 'state')")
        return record

    def write_status(self, record: dict) -> None:
        atomic_write_json(self.status_path, record)

    def update_status(self, **changes) -> dict:
        record = self.read_status()
        record.update(changes)
        self.write_status(record)
        return record

    def request_cancel(self) -> None:
        atomic_write_text(self.cancel_path, f"{time.time()}\n")

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()


def effective_state(record: dict, now: Optional[float] = None) -> str:
    """The state a reader should show: the recorded one, or ``died`` for a dead writer.

    A ``running`` job on another host cannot be checked and is reported as ``running``.
    """
    state = record.get("state")
    if state not in ACTIVE_STATES:
        return state
    if not record.get("pid"):
        started = record.get("started") or 0
        now = time.time() if now is None else now
        return state if now - started < STARTING_GRACE_S else "died"
    alive = liveness(ProcessIdentity.from_record(record))
    if alive in (ALIVE, OTHER_HOST):
        return state
    return "died"


def list_jobs(root: str | Path) -> list[dict]:
    """Every job under ``root`` (oldest first), each its status record plus ``effective_state``
    and ``folder``. Folders with an unreadable status file are listed with state ``damaged``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    jobs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        job = JobFolder(folder)
        try:
            record = job.read_status()
        except InputError as exc:
            record = {"id": folder.name, "state": "damaged", "error": str(exc)}
        record = dict(record)
        record["effective_state"] = effective_state(record) if record["state"] != "damaged" else "damaged"
        record["folder"] = str(folder)
        jobs.append(record)
    jobs.sort(key=lambda r: (r.get("started") or 0, r.get("id", "")))
    return jobs


def is_active(record: dict) -> bool:
    return effective_state(record) in ACTIVE_STATES


def pid_record(pid: int) -> dict:
    """``{"pid", "host", "pid_start", "pgid"}`` for a process of this host."""
    rec = ProcessIdentity.of(pid).to_record()
    try:
        rec["pgid"] = os.getpgid(pid) if hasattr(os, "getpgid") else None
    except OSError:
        rec["pgid"] = None
    return rec
