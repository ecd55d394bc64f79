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
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .events import FINAL_EVENTS, EventsReader
from . import proctree

__all__ = ["JobProcess", "default_cli_prefix", "python_executable", "library_env", "find_running_job", "pid_alive", "read_status"]

#: the folder that holds ``MedSeqFTLib``: the repository root in a source checkout, the
#: ``qt-scripted-modules`` folder in an installed extension (CMake copies the library there).
LIBRARY_PARENT = Path(__file__).resolve().parent.parent.parent
if not (LIBRARY_PARENT / "MedSeqFTLib").is_dir() and (Path(__file__).resolve().parent.parent / "MedSeqFTLib").is_dir():
    LIBRARY_PARENT = Path(__file__).resolve().parent.parent


#: names of an executable that is a Python interpreter (not Slicer's GUI application)
_PYTHON_NAME = re.compile(r"^(python|pythonw)(\d+(\.\d+)?)?(\.exe)?$", re.IGNORECASE)


def python_executable() -> str:
    """The interpreter that runs the library: Slicer's ``PythonSlicer``, else this python.

    ``PythonSlicer`` is on PATH inside Slicer; failing that it is looked for next to the running
    executable (Slicer's ``bin`` folder). Inside Slicer's GUI ``sys.executable`` is the
    application itself (``SlicerApp-real``), never a fallback; outside Slicer the running
    interpreter is used when its name is a python's.

    Raises:
        RuntimeError: no PythonSlicer was found and the running executable is not a python.
    """
    found = shutil.which("PythonSlicer")
    if found:
        return found
    exe = Path(sys.executable)
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        candidate = exe.parent / name
        if candidate.is_file():
            return str(candidate)
    if _PYTHON_NAME.match(exe.name):
        return str(exe)
    raise RuntimeError(f"cannot find Slicer's PythonSlicer: it is not on PATH nor next to {exe}, and {exe.name} "
                       "is not a Python interpreter; reinstall Slicer or put its bin folder on PATH")


def default_cli_prefix() -> List[str]:
    """``[PythonSlicer or this python, "-m", "MedSeqFTLib"]`` (see ``python_executable``)."""
    return [python_executable(), "-m", "MedSeqFTLib"]


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
        self._cancel_launch_at: Optional[float] = None  # when Cancel stopped the launch
        self.pid: Optional[int] = None

    # -- starting -------------------------------------------------------------------------
    def argv(self, command: str, args: Sequence[str] = (), detach: bool = True) -> List[str]:
        """The full command line for ``command`` on this workspace."""
        out = self.cli_prefix + [command, str(self.workspace)] + [str(a) for a in args]
        return out + (["--detach"] if detach else [])

    def _popen(self, argv: List[str]) -> subprocess.Popen:
        # its own process group, so that Cancel can stop PythonSlicer *and* its python child
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=self.env, cwd=str(self.workspace.parent), **proctree.group_popen_kwargs())

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
        self._cancel_launch_at = None
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
        if self._cancel_launch_at is not None:
            return self._poll_cancelled_launch()
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
        """Cancel the job; returns at once.

        While launching: the launcher's whole process tree is stopped (``PythonSlicer`` and the
        python it started); once it is gone, ``medseqft cancel WS`` stops a worker the launch
        may already have started, and ``poll`` reports ``cancelled``. While running: ``medseqft
        cancel WS`` asks the job to stop at its next safe point; it writes ``cancelled``.
        """
        if self.state == "launching" and self._launcher is not None:
            if self._cancel_launch_at is None:
                self._cancel_launch_at = time.monotonic()
                proctree.terminate_tree(self._launcher)
            return
        self._helpers.append(self._popen(self.cli_prefix + ["cancel", str(self.workspace)]))

    #: seconds to wait for a terminated launch tree before killing it, and before giving up on it
    LAUNCH_KILL_AFTER_S = 3.0
    LAUNCH_GIVE_UP_S = 6.0

    def _poll_cancelled_launch(self) -> List[dict]:
        waited = time.monotonic() - self._cancel_launch_at
        if proctree.tree_alive(self._launcher) and waited < self.LAUNCH_GIVE_UP_S:
            if waited >= self.LAUNCH_KILL_AFTER_S:
                proctree.kill_tree(self._launcher)
            return []
        try:
            self._launcher.communicate(timeout=1.0)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass
        self._launcher = None
        self._cancel_launch_at = None
        # the launch may have started a worker before it was stopped: the library cancels it
        self._helpers.append(self._popen(self.cli_prefix + ["cancel", str(self.workspace)]))
        self.state = "cancelled"
        return [{"time": time.time(), "event": "cancelled", "stage": None, "task": None, "level": "warning",
                 "message": "cancelled while the job was starting", "synthesized": True}]

    def _reap_helpers(self) -> None:
        for proc in list(self._helpers):
            if proc.poll() is not None:
                proc.communicate()
                self._helpers.remove(proc)

    @property
    def active(self) -> bool:
        return self.state in ("launching", "running")
