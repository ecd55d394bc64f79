"""The background ``python -m MedSeqFTLib <command> WS ... --detach`` job, seen from the GUI.

``JobProcess`` never blocks: ``start`` launches the short-lived ``--detach`` call with
``subprocess.Popen``; each ``poll`` (from a ``qt.QTimer``) checks whether that call has
printed its job id yet, then reads the new lines of ``WS/jobs/<id>/events.jsonl``
incrementally and, every few seconds, whether the worker process is still alive (a worker
that died without a final event is reported as ``failed`` so the panel offers Resume).
``find_running_job`` lets a panel reattach to a job that outlived a previous Slicer session.

No Qt here: the timer lives in ``jobcontrol``; this file is plain Python and is tested with
a real fake CLI process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .events import FINAL_EVENTS, EventsReader

__all__ = ["JobProcess", "default_cli_prefix", "library_env", "find_running_job", "pid_alive", "read_status"]

#: the folder that holds ``MedSeqFTLib``: the repository root in a source checkout, the
#: ``qt-scripted-modules`` folder in an installed extension (CMake copies the library there).
LIBRARY_PARENT = Path(__file__).resolve().parent.parent.parent
if not (LIBRARY_PARENT / "MedSeqFTLib").is_dir() and (Path(__file__).resolve().parent.parent / "MedSeqFTLib").is_dir():
    LIBRARY_PARENT = Path(__file__).resolve().parent.parent


def default_cli_prefix() -> List[str]:
    """``[PythonSlicer or this interpreter, "-m", "MedSeqFTLib"]``.

    Slicer has no ``slicer.app.pythonExecutable``; ``PythonSlicer`` is its plain interpreter
    (on PATH inside Slicer), and outside Slicer the running interpreter is the right one.
    """
    exe = shutil.which("PythonSlicer") or sys.executable
    return [exe, "-m", "MedSeqFTLib"]


def library_env(base: Optional[dict] = None) -> dict:
    """A copy of ``base`` (default ``os.environ``) whose PYTHONPATH finds ``MedSeqFTLib``."""
    env = dict(os.environ if base is None else base)
    parts = [str(LIBRARY_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def pid_alive(pid: Optional[int]) -> bool:
    """Whether process ``pid`` exists, without touching it (also on Windows)."""
    if not pid or int(pid) <= 0:
        return False
    pid = int(pid)
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (finished, not yet reaped by its parent) still answers kill(0)
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True


def read_status(job_dir: Path) -> dict:
    """``job_dir/status.json`` as a dict, ``{}`` when missing or half-written."""
    try:
        data = json.loads((Path(job_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_event(job_dir: Path) -> Optional[dict]:
    """The last complete line of ``events.jsonl`` (reads only the file's tail)."""
    path = Path(job_dir) / "events.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            tail = fh.read()
    except OSError:
        return None
    for raw in reversed(tail.split(b"\n")):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


STARTING_GRACE_S = 30.0


def _just_starting(status: dict, job_dir: Path) -> bool:
    """A job whose worker has not written its pid yet (state ``starting``, recent folder)."""
    if status.get("state") not in ("starting", None) or status.get("pid"):
        return False
    try:
        return time.time() - Path(job_dir).stat().st_mtime < STARTING_GRACE_S
    except OSError:
        return False


def find_running_job(workspace: str | Path) -> Optional[Path]:
    """The newest job folder under ``WS/jobs`` whose worker is still alive, or ``None``.

    A job counts as running when its ``status.json`` names a live ``pid`` and its events
    have no final line yet.
    """
    jobs = Path(workspace) / "jobs"
    if not jobs.is_dir():
        return None
    candidates = sorted((p for p in jobs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for job_dir in candidates:
        status = read_status(job_dir)
        last = _last_event(job_dir)
        if last is not None and last.get("event") in FINAL_EVENTS:
            continue
        if status.get("state") in FINAL_EVENTS + ("died",):
            continue
        if pid_alive(status.get("pid")) or _just_starting(status, job_dir):
            return job_dir
    return None


class JobProcess:
    """One background library job for a workspace.

    Args:
        workspace: the workspace folder.
        cli_prefix: how to call the command line; default ``default_cli_prefix()``. Tests pass
            ``[python, fake_cli.py]``.
        env: environment of the launched process; default ``library_env()``.
        liveness_every_s: how often ``poll`` checks that the worker is alive.

    Attributes:
        state: ``"idle"``, ``"launching"``, ``"running"`` or one of ``FINAL_EVENTS``.
        job_id, job_dir: known once the ``--detach`` call printed the id (or after ``attach``).
        command: the library command (``"refine"``, ``"select"``, ...).
        error: the one-line message of a refused launch (exit 2) or of a crash.
    """

    def __init__(self, workspace: str | Path, cli_prefix: Optional[Sequence[str]] = None,
                 env: Optional[dict] = None, liveness_every_s: float = 2.0) -> None:
        self.workspace = Path(workspace)
        self.cli_prefix = list(cli_prefix) if cli_prefix else default_cli_prefix()
        self.env = env if env is not None else library_env()
        self.liveness_every_s = float(liveness_every_s)
        self.state = "idle"
        self.command: Optional[str] = None
        self.job_id: Optional[str] = None
        self.job_dir: Optional[Path] = None
        self.error: Optional[str] = None
        self.exit_code: Optional[int] = None
        self._launcher: Optional[subprocess.Popen] = None
        self._helpers: List[subprocess.Popen] = []
        self._reader: Optional[EventsReader] = None
        self._next_liveness = 0.0
        self.pid: Optional[int] = None

    # -- starting -------------------------------------------------------------------------
    def argv(self, command: str, args: Sequence[str] = (), detach: bool = True) -> List[str]:
        """The full command line for ``command`` on this workspace."""
        out = self.cli_prefix + [command, str(self.workspace)] + [str(a) for a in args]
        return out + (["--detach"] if detach else [])

    def _popen(self, argv: List[str]) -> subprocess.Popen:
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=self.env, cwd=str(self.workspace.parent), **kwargs)

    def start(self, command: str, args: Sequence[str] = ()) -> None:
        """Launch ``command`` detached; returns at once (state ``"launching"``).

        Raises:
            RuntimeError: a job of this object is still launching or running.
        """
        if self.state in ("launching", "running"):
            raise RuntimeError(f"a {self.command} job is already {self.state}")
        self.command = command
        self.job_id = self.job_dir = self.error = self.exit_code = self.pid = None
        self._reader = None
        self._launcher = self._popen(self.argv(command, args))
        self.state = "launching"

    def attach(self, job_dir: str | Path) -> None:
        """Follow an existing job folder (reattach after reopening the workspace).

        Events already in the file are replayed by the next ``poll`` so the log and progress
        show the whole run.
        """
        self.job_dir = Path(job_dir)
        self.job_id = self.job_dir.name
        status = read_status(self.job_dir)
        self.command = status.get("command") or self.command
        if isinstance(self.command, list):
            self.command = self.command[0] if self.command else None
        self.pid = status.get("pid")
        self._reader = EventsReader(self.job_dir / "events.jsonl")
        self.error = self.exit_code = None
        self.state = "running"
        self._next_liveness = time.monotonic() + self.liveness_every_s

    # -- polling --------------------------------------------------------------------------
    def poll(self) -> List[dict]:
        """Advance: return new events (maybe synthesized ``failed`` ones); never blocks."""
        self._reap_helpers()
        if self.state == "launching":
            return self._poll_launcher()
        if self.state != "running" or self._reader is None:
            return []
        events = self._reader.read_new()
        for ev in events:
            if ev.get("event") in FINAL_EVENTS:
                self.state = ev["event"]
                if self.state == "failed":
                    self.error = ev.get("message")
                return events
        now = time.monotonic()
        if now >= self._next_liveness:
            self._next_liveness = now + self.liveness_every_s
            status = read_status(self.job_dir)
            self.pid = status.get("pid", self.pid)
            if status.get("state") == "died" or (self.pid and not pid_alive(self.pid)):
                # the worker may have written its last line just before exiting
                events += self._reader.read_new()
                if any(ev.get("event") in FINAL_EVENTS for ev in events):
                    self.state = next(ev["event"] for ev in events if ev.get("event") in FINAL_EVENTS)
                    return events
                final = status.get("state") if status.get("state") in FINAL_EVENTS else "failed"
                message = status.get("error") or status.get("message") or f"job process {self.pid} ended without a final event (crashed or killed); use Resume"
                self.state, self.error = final, message
                events.append({"time": time.time(), "event": final, "stage": None, "task": None,
                               "message": message, "level": "error" if final == "failed" else "info",
                               "synthesized": True})
        return events

    def _poll_launcher(self) -> List[dict]:
        code = self._launcher.poll()
        if code is None:
            return []
        out, err = self._launcher.communicate()
        self._launcher = None
        self.exit_code = code
        text = out.decode("utf-8", "replace").strip()
        if code != 0 or not text:
            lines = [ln for ln in err.decode("utf-8", "replace").strip().splitlines() if ln.strip()]
            self.error = lines[-1] if lines else f"launcher exited with code {code}"
            self.state = "failed"
            return [{"time": time.time(), "event": "failed", "stage": None, "task": None,
                     "message": self.error, "level": "error", "exit_code": code, "synthesized": True}]
        job_id = text.splitlines()[-1].strip()
        self.attach(self.workspace / "jobs" / job_id)
        return self.poll()

    # -- cancelling -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the library to cancel (``medseqft cancel WS``); returns at once.

        The job stops at its next safe point and writes ``cancelled``; ``poll`` reports it.
        """
        if self.state == "launching" and self._launcher is not None:
            self._launcher.terminate()
        self._helpers.append(self._popen(self.cli_prefix + ["cancel", str(self.workspace)]))

    def _reap_helpers(self) -> None:
        for proc in list(self._helpers):
            if proc.poll() is not None:
                proc.communicate()
                self._helpers.remove(proc)

    @property
    def active(self) -> bool:
        return self.state in ("launching", "running")
