"""Who is a process, is it still alive, and how to stop it.

A pid alone is not an identity: after a crash the same number can be handed to an
unrelated process. We therefore record ``(host, pid, start)`` where ``start`` is the
process start time (Linux: field 22 of ``/proc/<pid>/stat``, clock ticks since boot;
elsewhere ``psutil``'s create time when psutil is installed). A record is the same live
process only if the host matches, the pid exists and is not a zombie, and the start time
matches (when both sides know it).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

__all__ = [
    "ProcessIdentity",
    "host_name",
    "process_start",
    "pid_exists",
    "liveness",
    "send_signal",
    "wait_until_gone",
]

ALIVE, DEAD, OTHER_HOST = "alive", "dead", "other_host"


def host_name() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> Optional[list[str]]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return text[text.rfind(")") + 2:].split()


def process_start(pid: int) -> Optional[float]:
    """Start time of ``pid`` as an opaque comparable number, or ``None`` if unknown."""
    fields = _proc_stat(pid)
    if fields is not None and len(fields) > 19:
        return float(fields[19])          # starttime, field 22 (fields[0] is field 3)
    if sys.platform.startswith("linux"):
        return None
    try:
        import psutil
    except ImportError:
        return None
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.Error, OSError):
        return None


def pid_exists(pid: int) -> bool:
    """True if ``pid`` is a running (not zombie) process on this host."""
    if pid is None or int(pid) <= 0:
        return False
    pid = int(pid)
    fields = _proc_stat(pid)
    if fields is not None:
        return fields[0] not in ("Z", "X")
    if sys.platform == "win32":
        # os.kill(pid, 0) would terminate the process on Windows
        try:
            import psutil
        except ImportError:
            return True   # cannot tell: assume alive (the safe answer for a lock)
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ProcessIdentity:
    """``(host, pid, start)`` of a process, as written into lock and status files."""

    pid: int
    host: str
    start: Optional[float] = None

    @classmethod
    def current(cls) -> "ProcessIdentity":
        pid = os.getpid()
        return cls(pid=pid, host=host_name(), start=process_start(pid))

    @classmethod
    def of(cls, pid: int) -> "ProcessIdentity":
        return cls(pid=int(pid), host=host_name(), start=process_start(int(pid)))

    @classmethod
    def from_record(cls, record: dict) -> "ProcessIdentity":
        start = record.get("pid_start")
        return cls(pid=int(record.get("pid") or 0), host=str(record.get("host") or ""),
                   start=None if start is None else float(start))

    def to_record(self) -> dict:
        return {"pid": self.pid, "host": self.host, "pid_start": self.start}

    def as_dict(self) -> dict:
        return asdict(self)


def liveness(ident: ProcessIdentity) -> str:
    """``"alive"``, ``"dead"`` (gone, zombie, or pid reused) or ``"other_host"`` (cannot tell)."""
    if ident.host and ident.host != host_name():
        return OTHER_HOST
    if not pid_exists(ident.pid):
        return DEAD
    if ident.start is not None:
        now_start = process_start(ident.pid)
        if now_start is not None and abs(now_start - ident.start) > 0.01:
            return DEAD   # the pid was reused by a newer process
    return ALIVE


def send_signal(ident: ProcessIdentity, sig: int, group: bool = False) -> bool:
    """Send ``sig`` to the process (or its process group) if it is still the same process.

    Returns:
        True if a signal was sent, False if the process is gone or not provably ours.
    """
    if liveness(ident) != ALIVE:
        return False
    try:
        if group and hasattr(os, "killpg") and os.getpgid(ident.pid) == ident.pid:
            os.killpg(ident.pid, sig)
        else:
            # on Windows this is TerminateProcess (a hard stop); graceful cancel there goes
            # through the job's cancel-request file instead
            os.kill(ident.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_until_gone(ident: ProcessIdentity, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Wait up to ``timeout_s`` for the process to end; True if it did."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        if liveness(ident) != ALIVE:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
