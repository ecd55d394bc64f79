"""State shared by the panels: the open workspace, the one background job, short commands.

One ``qt.QTimer`` polls everything (the job's ``events.jsonl``, any short command such as
``init``, ``add-task`` or ``plan --set``, and read-only queries such as ``plan --json`` or
``status --json``); each tick does a bounded amount of file reading, so the GUI thread never
waits on the library. Panels listen to plain-Python ``Signal`` objects, through the ``Guard``
(``controller.guard``) that runs every handler inside an error display. Each job log line also
goes to the ``MedSeqFT`` logger, i.e. to Slicer's application log. File -> Close Scene is
observed: ``sceneClosed`` tells the panels to forget the nodes they held.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .events import JobSummary
from .guard import LOG, Guard
from .jobprocess import JobProcess, default_cli_prefix, find_running_job, library_env
from .qtcompat import qt
from .signals import Signal
from . import workspace_files as wf

__all__ = ["Controller", "Prompts", "LOG_LEVELS"]

#: event ``level`` -> logging level of the job's line in the application log
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


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
        self._cli_prefix = list(cli_prefix) if cli_prefix else None
        self.env = env if env is not None else library_env()
        self.prompts = prompts or Prompts()
        #: runs every handler inside an error display (``prompts.error`` outside Slicer)
        self.guard = Guard(report=lambda text: self.prompts.error(text))
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
        self.sceneClosed = Signal()        # () File -> Close Scene removed every node
        self.scene_generation = 0          # +1 per scene close: work started before a close is stale
        self.timer = qt.QTimer()
        self.timer.setInterval(int(poll_ms))
        self.guard.connect(self.timer.timeout, "MedSeqFT could not follow the background job.", self.poll)
        if scene is not None:
            self.guard.observe(scene, scene.EndCloseEvent, "MedSeqFT could not clean up after the scene was closed.",
                               lambda *_: self._on_scene_closed())
        self.last_tick_s = 0.0  # duration of the last poll, for the stall measurement
        #: called before any library process starts; returning False cancels the launch
        #: (Slicer: the first-use dependency check)
        self.preflight: Optional[Callable[[], bool]] = None

    @property
    def cli_prefix(self) -> List[str]:
        """How to run the library CLI; resolved on first use (``default_cli_prefix``).

        Raises:
            RuntimeError: no Python interpreter for the library was found.
        """
        if self._cli_prefix is None:
            self._cli_prefix = default_cli_prefix()
        return self._cli_prefix

    def _on_scene_closed(self) -> None:
        self.scene_generation += 1
        self.sceneClosed.emit()

    def _preflight_ok(self) -> bool:
        return self.preflight is None or bool(self.preflight())

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

    def run_command(self, args: Sequence[str], on_done: Callable[[int, str, str], None]) -> bool:
        """Run ``medseqft <args>`` (a short command) in the background; ``on_done(code, out, err)``.

        Returns ``False`` (and starts nothing) when the first-use dependency check refused.
        """
        def done(code, out, err):
            try:
                on_done(code, out, err)
            finally:
                self.busyChanged.emit(self.busy)

        if not self._preflight_ok():
            return False
        self._commands.append(_Command(self.cli_prefix + [str(a) for a in args], self.env,
                                       self.guard.wrap(f"MedSeqFT could not handle the result of '{args[0]}'.", done)))
        self.busyChanged.emit(True)
        self.timer.start()
        return True

    def run_query(self, args: Sequence[str], on_done: Callable[[int, str, str], None]) -> None:
        """Run a read-only ``medseqft <args>`` (``plan WS --json``, ``status WS --json``) in the
        background; ``on_done(code, out, err)``.

        Unlike ``run_command`` a query does not make the controller busy, does not emit
        ``dataChanged`` (a panel refreshing on that signal would query forever) and skips the
        first-use dependency check (these commands import no torch; a failure is shown inline,
        also when the interpreter cannot be started: ``on_done(127, "", message)``).
        """
        done = self.guard.wrap(f"MedSeqFT could not read the answer of '{args[0]}'.", on_done)
        try:
            self._queries.append(_Command(self.cli_prefix + [str(a) for a in args], self.env, done))
        except (OSError, RuntimeError) as exc:  # no interpreter: the panel shows it inline, no pop-up per query
            done(127, "", f"cannot run the MedSeqFT library: {exc}")
            return
        self.timer.start()

    def run_job(self, command: str, args: Sequence[str] = ()) -> bool:
        """Start ``medseqft <command> WS <args> --detach`` unless a job is already running."""
        if self.workspace is None:
            self.prompts.error("open or create a workspace first")
            return False
        if self.job is not None and self.job.active:
            self.prompts.error(f"a {self.job.command} job is still running; cancel it or wait")
            return False
        if not self._preflight_ok():
            return False
        job = JobProcess(self.workspace, self.cli_prefix, self.env)
        job.start(command, args)  # raises (e.g. OSError: no interpreter) before any state changes
        self.job = job
        self.summary = JobSummary()
        LOG.info("MedSeqFT: started %s on %s", command, self.workspace)
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
                    self._log_event(ev)
                self.jobEvents.emit(events, self.summary)
            if was_active and not self.job.active:
                self.jobFinished.emit(self.job.state, self.summary, self.job.command)
                self.busyChanged.emit(self.busy)
                self.dataChanged.emit()
        if not self.busy and not self._queries:
            self.timer.stop()
        self.last_tick_s = time.perf_counter() - t0

    def _log_event(self, ev: dict) -> None:
        """The job's log line (if the event has one) in the application log."""
        line = self.summary.log_line(ev)
        if line:
            level = LOG_LEVELS.get(str(ev.get("level", "info")), logging.INFO)
            LOG.log(level, "MedSeqFT %s: %s", self.job.command if self.job else "job", line)

    def shutdown(self) -> None:
        """Stop polling and observing the scene (the job itself keeps running; reopening the
        workspace reattaches)."""
        self.timer.stop()
        self.guard.remove_observers()
