"""Incremental reader of a job's ``events.jsonl`` and the summary a progress panel shows.

The file grows while the job runs. ``EventsReader`` remembers its byte offset, so each poll
reads only what was appended since the last one (never the whole file), and keeps an
incomplete last line for the next poll (the writer may be half-way through a line).
Event fields are described in docs/CONTRACTS.md ("Events").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

__all__ = ["EventsReader", "JobSummary", "FINAL_EVENTS", "format_duration"]

FINAL_EVENTS = ("done", "failed", "cancelled")


class EventsReader:
    """Reads new JSON lines from ``path`` on each ``read_new()`` call.

    Args:
        path: the ``events.jsonl`` file (may not exist yet).
        max_bytes: most bytes read per call, so one poll never stalls the GUI thread on a
            huge backlog; the rest is read on the next calls.
    """

    def __init__(self, path: str | Path, max_bytes: int = 256 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read_new(self) -> List[dict]:
        """Return the complete events appended since the last call (possibly none).

        A malformed line is counted in ``bad_lines`` and skipped, never raised: the GUI keeps
        polling whatever the job writes.
        """
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(self.max_bytes)
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        events = []
        for raw in lines:
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.bad_lines += 1
                continue
            if isinstance(obj, dict):
                events.append(obj)
            else:
                self.bad_lines += 1
        return events


def format_duration(seconds: Optional[float]) -> str:
    """``3725`` -> ``"1 h 02 min"``, ``75`` -> ``"1 min 15 s"``, ``None`` -> ``"--"``."""
    if seconds is None:
        return "--"
    try:
        s = int(round(float(seconds)))
    except (TypeError, ValueError):
        return "--"
    if s < 0:
        return "--"
    if s >= 3600:
        return f"{s // 3600} h {(s % 3600) // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


@dataclass
class JobSummary:
    """What the progress widgets show, folded from the events seen so far."""

    stage: str = ""
    task: str = ""
    step: int = 0
    total: int = 0
    eta_s: Optional[float] = None
    losses: dict = field(default_factory=dict)
    message: str = ""
    final: Optional[str] = None  # "done" | "failed" | "cancelled" once the job ended
    started: Optional[float] = None
    updated: Optional[float] = None
    log_lines: List[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    def apply(self, ev: dict) -> None:
        """Fold one event into the summary and append its log line."""
        kind = ev.get("event", "progress")
        t = ev.get("time")
        if isinstance(t, (int, float)):
            self.updated = float(t)
            if self.started is None:
                self.started = float(t)
        if ev.get("stage"):
            self.stage = str(ev["stage"])
        if ev.get("task"):
            self.task = str(ev["task"])
        if kind == "progress":
            self.step = int(ev.get("step") or 0)
            self.total = int(ev.get("total") or 0)
            self.eta_s = ev.get("eta_s")
            if isinstance(ev.get("losses"), dict):
                self.losses = dict(ev["losses"])
        if ev.get("message"):
            self.message = str(ev["message"])
        if kind in FINAL_EVENTS:
            self.final = kind
            if kind == "done":
                self.eta_s = 0.0
        line = self.log_line(ev)
        if line:
            self.log_lines.append(line)

    @staticmethod
    def log_line(ev: dict) -> Optional[str]:
        """One human line per start/log/final event and per progress event with a message."""
        kind = ev.get("event", "progress")
        if kind == "progress" and not ev.get("message"):
            return None
        t = ev.get("time")
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "--:--:--"
        where = "/".join(str(x) for x in (ev.get("stage"), ev.get("task")) if x)
        level = ev.get("level", "info")
        prefix = "" if level == "info" else f"{level.upper()}: "
        text = ev.get("message") or kind
        return f"{stamp} [{where or kind}] {prefix}{text}"
