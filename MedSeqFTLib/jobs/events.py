"""The ``events.jsonl`` protocol: one JSON object per line, appended while a job runs.

This format is a stable interface (the Slicer module, scripts and tests read it); see
``docs/jobs.md``. Every line carries every key of :data:`EVENT_KEYS` (``null`` where not
applicable), so a reader never needs ``.get`` defaults. New keys may be added in later
versions; existing keys keep their meaning.

Appending is not done through ``io.atomic`` (rewriting the whole log per line would be
quadratic): each event is one ``write`` of one complete line on a file opened with
``O_APPEND``, then flushed. A process killed in the middle of a write can leave at most one
truncated last line, which :func:`read_events` skips.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Iterator, Mapping, Optional

__all__ = [
    "EVENT_KEYS",
    "EVENT_KINDS",
    "FINAL_EVENTS",
    "STAGES",
    "LEVELS",
    "make_event",
    "EventWriter",
    "read_events",
    "last_event",
]

EVENT_KEYS = ("time", "event", "stage", "task", "step", "total", "losses", "eta_s", "message", "level", "exit_code")
EVENT_KINDS = ("start", "progress", "log", "done", "failed", "cancelled")
FINAL_EVENTS = ("done", "failed", "cancelled")
STAGES = ("select", "fft", "kd_fft", "lora_kd", "merge", "evaluate", "predict", "pretrain", "report", "demo", "prepare")
LEVELS = ("info", "warning", "error")


def _clean_float(value) -> Optional[float]:
    # JSON has no NaN/inf; a diverged loss is reported as null rather than breaking readers
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def make_event(event: str, *, stage: Optional[str] = None, task: Optional[str] = None,
               step: Optional[int] = None, total: Optional[int] = None,
               losses: Optional[Mapping[str, float]] = None, eta_s: Optional[float] = None,
               message: Optional[str] = None, level: str = "info",
               exit_code: Optional[int] = None, now: Optional[float] = None) -> dict:
    """Build one event with every key of :data:`EVENT_KEYS`.

    Raises:
        ValueError: ``event`` or ``level`` is not one of the documented values (a
            programming error, not user input).
    """
    if event not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {event!r}; expected one of {EVENT_KINDS}")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")
    return {
        "time": float(time.time() if now is None else now),
        "event": event,
        "stage": stage,
        "task": task,
        "step": None if step is None else int(step),
        "total": None if total is None else int(total),
        "losses": None if losses is None else {str(k): _clean_float(v) for k, v in losses.items()},
        "eta_s": _clean_float(eta_s),
        "message": message,
        "level": level,
        "exit_code": None if exit_code is None else int(exit_code),
    }


class EventWriter:
    """Appends events to ``events.jsonl``; one ``write`` call per line.

    Args:
        path: the ``events.jsonl`` file (created with its folder if missing).
        fsync_final: fsync after a final event so ``done``/``failed``/``cancelled``
            survives a power cut; progress lines are only flushed (cheap).
    """

    def __init__(self, path: str | Path, fsync_final: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync_final = fsync_final
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: dict) -> None:
        line = (json.dumps(event, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
        os.write(self._fd, line)
        if self.fsync_final and event.get("event") in FINAL_EVENTS:
            os.fsync(self._fd)

    def emit(self, event: str, **fields) -> dict:
        """``make_event(event, **fields)`` then :meth:`write`; returns the event."""
        ev = make_event(event, **fields)
        self.write(ev)
        return ev

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_events(path: str | Path, start_byte: int = 0) -> Iterator[dict]:
    """Yield the complete events of ``path`` from byte ``start_byte`` on.

    Lines that are not complete JSON objects (a line cut by a kill, a half-written line
    while the job is still appending) are skipped. A missing file yields nothing, so a
    poller can start before the job wrote its first line.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(start_byte)
            data = fh.read()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            ev = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(ev, dict) and "event" in ev:
            yield ev


def last_event(path: str | Path) -> Optional[dict]:
    """The last complete event of ``path`` (``None`` when there is none)."""
    last = None
    for ev in read_events(path):
        last = ev
    return last
