"""The workspace lock: one writer at a time, stale locks of dead processes cleared safely.

The lock is a file ``WS/.lock`` created with ``O_CREAT | O_EXCL`` (atomic on local file
systems) holding the owner's pid, host, process start time and command. A second writer gets
an ``InputError`` naming the owner. A lock whose owner is dead (same host, pid gone or reused)
is moved aside with an atomic rename before it is taken, so two processes that both find it
stale cannot both win.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from ..errors import InputError

__all__ = ["WorkspaceLock", "process_start_time", "pid_alive"]


def process_start_time(pid: int) -> Optional[str]:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start_time: Optional[str] = None) -> bool:
    """Whether ``pid`` runs and (when known) is the same process that took the lock."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start_time is not None:
        now = process_start_time(pid)
        if now is not None and now != start_time:
            return False  # pid reused by another process
    # a zombie still answers kill(0) but is dead for our purpose
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state == "Z":
            return False
    except OSError:
        pass
    return True


class WorkspaceLock:
    """``with WorkspaceLock(ws_root, "refine"):`` holds ``ws_root/.lock`` for the block."""

    def __init__(self, root: Path, command: str) -> None:
        self.path = Path(root) / ".lock"
        self.command = command
        self._held = False

    def _owner_info(self) -> dict:
        pid = os.getpid()
        return {"pid": pid, "host": socket.gethostname(), "start_time": process_start_time(pid),
                "command": self.command, "time": time.time()}

    def read_owner(self) -> Optional[dict]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written or damaged: treated as held by an unknown owner

    def is_stale(self, owner: dict) -> bool:
        if not owner:
            # unreadable lock: stale only if it is old (a writer fills it within milliseconds)
            try:
                return time.time() - self.path.stat().st_mtime > 10
            except FileNotFoundError:
                return True
        if owner.get("host") != socket.gethostname():
            return False  # cannot check another machine's processes
        return not pid_alive(int(owner.get("pid", -1)), owner.get("start_time"))

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.read_owner()
                if owner is None:
                    continue  # released meanwhile
                if self.is_stale(owner):
                    aside = self.path.with_name(f".lock.stale.{os.getpid()}")
                    try:
                        os.replace(self.path, aside)
                        aside.unlink(missing_ok=True)
                    except FileNotFoundError:
                        pass
                    continue
                who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} running '{owner.get('command', '?')}'"
                raise InputError(self.path.parent, f"workspace is locked by {who}; wait for it to finish or run 'medseqft cancel {self.path.parent}'")
            with os.fdopen(fd, "w") as fh:
                json.dump(self._owner_info(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            self._held = True
            return
        raise InputError(self.path.parent, "could not take the workspace lock (it keeps changing owner)")

    def release(self) -> None:
        if self._held:
            owner = self.read_owner()
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> "WorkspaceLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def locked(root: Path, command: str):
    with WorkspaceLock(root, command) as lock:
        yield lock
