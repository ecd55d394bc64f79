"""The workspace lock: one writer at a time, stale locks of dead processes cleared safely.

The lock is a file ``WS/.lock`` created with ``O_CREAT | O_EXCL`` (atomic on local file
systems) holding the owner's pid, host, process start time, command and time. A second
writer gets an ``InputError`` naming the owner.

A lock is *stale* when its owner is provably gone: same host and the pid no longer runs, is a
zombie, or now belongs to a process that started at another time (pid reuse after a crash
or reboot; the start time comes from ``/proc/<pid>/stat``, or psutil elsewhere). A lock
written by another host cannot be checked and is respected unless ``force=True``
(``medseqft ... --force`` where a command offers it); a lock file that cannot be parsed is
stale once it is older than ``UNREADABLE_GRACE_S`` (a writer fills it within milliseconds).

Clearing is race-free: the stale file is renamed to a unique name (atomic), and its content
is compared with what was judged stale. If another process replaced the lock in between
(so the renamed file is a *live* lock), it is put back with ``os.link`` (which never
overwrites) and we try again.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..jobs.process import ALIVE, ProcessIdentity, host_name, liveness, process_start

__all__ = ["WorkspaceLock", "locked", "process_start_time", "pid_alive", "UNREADABLE_GRACE_S"]

UNREADABLE_GRACE_S = 10.0


def process_start_time(pid: int) -> Optional[str]:
    """Start time of ``pid`` as text (Linux: clock ticks since boot), or ``None`` if unknown."""
    start = process_start(pid)
    if start is None:
        return None
    return str(int(start)) if float(start).is_integer() else repr(start)


def _start_value(start) -> Optional[float]:
    try:
        return None if start is None else float(start)
    except (TypeError, ValueError):
        return None


def pid_alive(pid: int, start_time=None) -> bool:
    """Whether ``pid`` runs on this host and (when ``start_time`` is given) is the same process."""
    if pid is None or int(pid) <= 0:
        return False
    ident = ProcessIdentity(pid=int(pid), host=host_name(), start=_start_value(start_time))
    return liveness(ident) == ALIVE


class WorkspaceLock:
    """``with WorkspaceLock(ws_root, "refine"):`` holds ``ws_root/.lock`` for the block.

    Args:
        root: the workspace folder.
        command: what the owner runs (shown to a refused second writer).
        force: also take over a lock held by another host (only when that job is known to
            be gone: the lock cannot check a remote process).
    """

    def __init__(self, root: Path, command: str, force: bool = False) -> None:
        self.path = Path(root) / ".lock"
        self.command = command
        self.force = force
        self._held = False
        self._mine: Optional[dict] = None

    def _owner_info(self) -> dict:
        pid = os.getpid()
        return {"pid": pid, "host": host_name(), "start_time": process_start_time(pid),
                "command": self.command, "time": time.time()}

    def read_owner(self) -> Optional[dict]:
        """The lock's content; ``None`` if there is no lock, ``{}`` if it cannot be parsed."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written or damaged: treated as held by an unknown owner
        return data if isinstance(data, dict) else {}

    def is_stale(self, owner: dict) -> bool:
        """Whether ``owner`` (the lock's content) is provably dead; see the module docstring."""
        if not owner or "pid" not in owner:
            try:
                return time.time() - self.path.stat().st_mtime > UNREADABLE_GRACE_S
            except FileNotFoundError:
                return True
        if owner.get("host") != host_name():
            return self.force
        try:
            pid = int(owner.get("pid"))
        except (TypeError, ValueError):
            return True
        return not pid_alive(pid, owner.get("start_time"))

    def _clear_stale(self, judged: dict) -> None:
        aside = self.path.with_name(f".lock.stale.{os.getpid()}.{secrets.token_hex(3)}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return  # someone else cleared it
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = {}
        try:
            fresh = time.time() - aside.stat().st_mtime < 10
        except OSError:
            fresh = False
        if moved != judged or (not moved and fresh):
            # we moved a lock another process had just taken (possibly still empty, between
            # its O_EXCL create and its write): give it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            InputError: a live process (or another host) holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.read_owner()
                if owner is None:
                    continue  # released meanwhile
                if self.is_stale(owner):
                    self._clear_stale(owner)
                    continue
                who = (f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} running "
                       f"'{owner.get('command', '?')}'") if owner else "an unknown process (lock being written)"
                hint = f"wait for it to finish or run 'medseqft cancel {self.path.parent}'"
                if owner and owner.get("host") != host_name():
                    hint = f"if that job is really gone, delete {self.path} (or rerun with --force)"
                raise InputError(self.path.parent, f"workspace is locked by {who}; {hint}")
            self._mine = self._owner_info()
            with os.fdopen(fd, "w") as fh:
                json.dump(self._mine, fh)
                fh.flush()
                os.fsync(fh.fileno())
            self._held = True
            return
        raise InputError(self.path.parent, "could not take the workspace lock (it keeps changing owner)")

    def release(self) -> None:
        if self._held:
            if self.read_owner() == self._mine:
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> "WorkspaceLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def locked(root: Path, command: str, force: bool = False):
    with WorkspaceLock(root, command, force=force) as lock:
        yield lock
