"""State shared by the panels: the open workspace, the one background job, short commands.

One ``qt.QTimer`` polls everything (the job's ``events.jsonl``, any short command such as
``init``, ``add-task`` or ``plan --set``, and read-only queries such as ``plan --json`` or
``status --json``); each tick does a bounded amount of file reading, so the GUI thread never
waits on the library. Panels listen to plain-Python ``Signal`` objects.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .events import JobSummary
from .jobprocess import JobProcess, default_cli_prefix, find_running_job, library_env
from .qtcompat import qt
from .signals import Signal
from . import workspace_files as wf

__all__ = ["Controller", "Prompts"]


class Prompts:
    """How the panels ask and tell the user. Slicer: dialogs; tests: a recorder that answers."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.messages: List[tuple] = []

    def ask(self, text: str) -> bool:
        self.messages.append(("ask", text))
        return self.answer

    def info(self, text: str) -> None:
        self.messages.append(("info", text))

    def error(self, text: str) -> None:
        self.messages.append(("error", text))


class _Command:
    """A short library command (not a job) running in the background.

    Its output goes to temporary files, not pipes: a pipe is read only once the process has
    ended, so a command printing more than the pipe buffer (``plan --json`` of many tasks)
    would block forever.
    """

    def __init__(self, argv: List[str], env: dict, on_done: Callable[[int, str, str], None]) -> None:
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        self.on_done = on_done

    @property
    def finished(self) -> bool:
        return self.proc.poll() is not None

    def deliver(self) -> None:
        """Call ``on_done(code, stdout, stderr)`` (once the process has ended)."""
        texts = []
        for fh in (self.out, self.err):
            fh.seek(0)
            texts.append(fh.read().decode("utf-8", "replace"))
            fh.close()
        self.on_done(self.proc.returncode, texts[0], texts[1])


class Controller:
    """Owns the workspace path, the job and the poll timer.

    Args:
        scene: the MRML scene (``slicer.mrmlScene``; a ``vtkMRMLScene`` in tests; ``None``
            disables scene features).
        cli_prefix: how to run the library CLI (default ``default_cli_prefix()``).
        prompts: the ``Prompts`` used for questions and messages.
        poll_ms: timer period.
    """

    def __init__(self, scene=None, cli_prefix: Optional[Sequence[str]] = None, prompts: Optional[Prompts] = None,
                 env: Optional[dict] = None, poll_ms: int = 200) -> None:
        self.scene = scene
        self.cli_prefix = list(cli_prefix) if cli_prefix else default_cli_prefix()
        self.env = env if env is not None else library_env()
        self.prompts = prompts or Prompts()
        self.workspace: Optional[Path] = None
        self.job: Optional[JobProcess] = None
        self.summary = JobSummary()
        self._commands: List[_Command] = []
        self._queries: List[_Command] = []
        self.workspaceChanged = Signal()   # (Path)
        self.dataChanged = Signal()        # () workspace files changed (tasks, buffer, metrics)
        self.jobStarted = Signal()         # (command)
        self.jobEvents = Signal()          # (list of events, JobSummary)
        self.jobFinished = Signal()        # (state, JobSummary, command)
        self.busyChanged = Signal()        # (bool)
        self.timer = qt.QTimer()
        self.timer.setInterval(int(poll_ms))
        self.timer.timeout.connect(self.poll)
        self.last_tick_s = 0.0  # duration of the last poll, for the stall measurement
        #: called before any library process starts; returning False cancels the launch
        #: (Slicer: the first-use dependency check)
        self.preflight: Optional[Callable[[], bool]] = None

    # -- workspace ------------------------------------------------------------------------
    def open_workspace(self, path: str | Path) -> bool:
        """Open ``path`` (must hold ``workspace.json``); reattach to its running job, if any."""
        path = Path(path)
        if not wf.is_workspace(path):
            self.prompts.error(f"{path}: no workspace.json here; create the workspace first")
            return False
        self.workspace = path
        self.workspaceChanged.emit(path)
        running = find_running_job(path)
        if running is not None and not (self.job and self.job.active):
            self.job = JobProcess(path, self.cli_prefix, self.env)
            self.job.attach(running)
            self.summary = JobSummary()
            self.jobStarted.emit(self.job.command or "job")
            self.busyChanged.emit(True)
            self.timer.start()
        return True

    # -- commands -------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self.job and self.job.active) or bool(self._commands)

    def run_command(self, args: Sequence[str], on_done: Callable[[int, str, str], None]) -> None:
        """Run ``medseqft <args>`` (a short command) in the background; ``on_done(code, out, err)``."""
        def done(code, out, err):
            on_done(code, out, err)
            self.busyChanged.emit(self.busy)

        if self.preflight is not None and not self.preflight():
            return
        self._commands.append(_Command(self.cli_prefix + [str(a) for a in args], self.env, done))
        self.busyChanged.emit(True)
        self.timer.start()

    def run_query(self, args: Sequence[str], on_done: Callable[[int, str, str], None]) -> None:
        """Run a read-only ``medseqft <args>`` (``plan WS --json``, ``status WS --json``) in the
        background; ``on_done(code, out, err)``.

        Unlike ``run_command`` a query does not make the controller busy, does not emit
        ``dataChanged`` (a panel refreshing on that signal would query forever) and skips the
        first-use dependency check (these commands import no torch; a failure is shown inline).
        """
        self._queries.append(_Command(self.cli_prefix + [str(a) for a in args], self.env, on_done))
        self.timer.start()

    def run_job(self, command: str, args: Sequence[str] = ()) -> bool:
        """Start ``medseqft <command> WS <args> --detach`` unless a job is already running."""
        if self.workspace is None:
            self.prompts.error("open or create a workspace first")
            return False
        if self.job is not None and self.job.active:
            self.prompts.error(f"a {self.job.command} job is still running; cancel it or wait")
            return False
        if self.preflight is not None and not self.preflight():
            return False
        self.job = JobProcess(self.workspace, self.cli_prefix, self.env)
        self.summary = JobSummary()
        self.job.start(command, args)
        self.jobStarted.emit(command)
        self.busyChanged.emit(True)
        self.timer.start()
        return True

    def cancel_job(self) -> None:
        if self.job is not None and self.job.active:
            self.job.cancel()

    # -- the timer ------------------------------------------------------------------------
    def poll(self) -> None:
        t0 = time.perf_counter()
        for cmd in [c for c in self._commands if c.finished]:
            self._commands.remove(cmd)  # before the callback, which may start the next step
            cmd.deliver()
            self.dataChanged.emit()
        for query in [q for q in self._queries if q.finished]:
            self._queries.remove(query)
            query.deliver()
        if self.job is not None and self.job.state != "idle":
            was_active = self.job.active
            events = self.job.poll()
            if events:
                for ev in events:
                    self.summary.apply(ev)
                self.jobEvents.emit(events, self.summary)
            if was_active and not self.job.active:
                self.jobFinished.emit(self.job.state, self.summary, self.job.command)
                self.busyChanged.emit(self.busy)
                self.dataChanged.emit()
        if not self.busy and not self._queries:
            self.timer.stop()
        self.last_tick_s = time.perf_counter() - t0

    def shutdown(self) -> None:
        """Stop polling (the job itself keeps running; reopening the workspace reattaches)."""
        self.timer.stop()
