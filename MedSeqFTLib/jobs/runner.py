"""Runs every long command (``JOB = True``) as a job: events, status file, cancel, ``--detach``.

``execute(name, args, run)`` is what ``MedSeqFTLib.cli.main`` calls. Three ways in:

* **foreground** (default): a job folder is created, ``run(args, reporter)`` runs in this
  process with a :class:`JobReporter` that writes ``events.jsonl``/``status.json`` and mirrors
  everything to the console progress bar. SIGTERM (and a first Ctrl-C) request a graceful
  cancel; a second Ctrl-C interrupts at once.
* **--detach**: the same command line minus ``--detach`` is started as a new process in its
  own session (``start_new_session``), stdout/stderr to ``<job>/log.txt``; the job id is
  printed on stdout at once and the launcher returns 0.
* **detached child**: started by the above with ``MEDSEQFT_JOB_DIR`` in its environment; it
  waits until the launcher has recorded its pid (EOF on stdin), then runs like a
  foreground job without console output.

Where the job folder goes (``<root>/<job id>/``): ``args.job_dir`` (``--job-dir``) if the
command has it, else ``WS/jobs`` for commands with a ``workspace`` argument that is a
workspace, else the command module's ``job_root(args)`` if it defines one (``demo``: the
demo's output folder), else ``~/.medseqft/jobs``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ..errors import EXIT_CANCELLED, EXIT_INPUT, EXIT_INTERNAL, Cancelled, InputError
from .events import EventWriter
from .job_folder import JobFolder, new_job_id, pid_record
from .job_reporter import JobReporter
from .process import host_name, process_start
from .reporter import ConsoleReporter

__all__ = ["execute", "jobs_root", "ENV_JOB_DIR", "DEFAULT_LAUNCHER"]

ENV_JOB_DIR = "MEDSEQFT_JOB_DIR"
ENV_HANDSHAKE = "MEDSEQFT_JOB_HANDSHAKE"
DEFAULT_LAUNCHER = (sys.executable, "-m", "MedSeqFTLib")


def jobs_root(args) -> Optional[Path]:
    """The folder holding this command's job folders, or ``None`` when the command's own
    arguments are wrong (no such workspace): it then runs without a job folder and reports
    the bad input itself.
    """
    job_dir = getattr(args, "job_dir", None)
    if job_dir:
        return Path(job_dir)
    ws = getattr(args, "workspace", None)
    if ws is not None:
        ws = Path(ws)
        return ws / "jobs" if (ws / "workspace.json").is_file() else None
    hook = getattr(getattr(args, "_module", None), "job_root", None)
    if callable(hook):
        root = hook(args)
        if root is not None:
            return Path(root)
    return Path.home() / ".medseqft" / "jobs"


def _command_line(name: str, args) -> list[str]:
    """The subcommand's argv (``[name, ...]``) as the user typed it."""
    argv = getattr(args, "_argv", None)
    argv = list(argv) if argv is not None else list(sys.argv[1:])
    if name not in argv:
        raise InputError("--detach", f"cannot recover the '{name}' command line to start it in the background")
    return argv


def _without_detach(argv: list[str]) -> list[str]:
    # argparse accepts unambiguous abbreviations (--det); drop those as well
    return [a for a in argv if not (a.startswith("--det") and "--detach".startswith(a))]


def _new_record(job_id: str, name: str, argv: list[str], state: str) -> dict:
    return {"id": job_id, "command": name, "argv": argv, "state": state, "pid": None, "host": host_name(),
            "pid_start": None, "pgid": None, "started": time.time(), "ended": None, "exit_code": None,
            "error": None, "progress": None, "cwd": os.getcwd(), "log": None}


def execute(name: str, args, run: Callable, console: Optional[ConsoleReporter] = None) -> int:
    """Run command ``name`` as a job; see the module docstring.

    Args:
        name: the subcommand (``"refine"``).
        args: its parsed arguments (``args.detach``; optionally ``args._argv``, ``args.job_dir``).
        run: ``run(args, reporter) -> int``.
        console: the foreground console reporter (default ``ConsoleReporter()`` on stderr).

    Returns:
        The command's exit code (0 for a launched ``--detach``).

    Raises:
        Whatever ``run`` raises (``InputError``, ``Cancelled``, ...), after the job's final
        event was written; the CLI maps them to exit codes.
    """
    child_dir = os.environ.pop(ENV_JOB_DIR, None)
    if child_dir:
        handshake = os.environ.pop(ENV_HANDSHAKE, None)
        if handshake:
            sys.stdin.read()   # EOF once the launcher has written our pid into status.json
        job = JobFolder(child_dir)
        record = job.read_status()
        record.update(state="running", **pid_record(os.getpid()))
        job.write_status(record)
        return _run_job(job, args, run, console=None, foreground=False)

    root = jobs_root(args)
    if getattr(args, "detach", False):
        if root is None:
            raise InputError(getattr(args, "workspace", "workspace"), "not a workspace (no workspace.json); run 'medseqft init' first")
        return _detach(name, args, root)
    console = console if console is not None else ConsoleReporter()
    if root is None:
        return int(run(args, console) or 0)
    job_id = new_job_id(name)
    job = JobFolder(root / job_id)
    job.path.mkdir(parents=True, exist_ok=False)
    argv = getattr(args, "_argv", None)
    record = _new_record(job_id, name, list(argv) if argv is not None else list(sys.argv[1:]), "running")
    record.update(pid_record(os.getpid()))
    job.write_status(record)
    return _run_job(job, args, run, console=console, foreground=True)


def _detach(name: str, args, root: Path) -> int:
    argv = _without_detach(_command_line(name, args))
    job_id = new_job_id(name)
    job = JobFolder(root / job_id)
    job.path.mkdir(parents=True, exist_ok=False)
    record = _new_record(job_id, name, argv, "starting")
    record["log"] = str(job.log_path)
    job.write_status(record)
    launcher = list(getattr(getattr(args, "_module", None), "JOB_LAUNCHER", None) or DEFAULT_LAUNCHER)
    env = dict(os.environ, **{ENV_JOB_DIR: str(job.path.resolve()), ENV_HANDSHAKE: "1"})
    popen_kw = {}
    if sys.platform == "win32":
        popen_kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
    else:
        popen_kw["start_new_session"] = True   # Ctrl-C in the launching shell does not reach it
    with open(job.log_path, "ab") as log:
        proc = subprocess.Popen(launcher + argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=os.getcwd(), close_fds=True, **popen_kw)
    record.update(pid=proc.pid, host=host_name(), pid_start=process_start(proc.pid),
                  pgid=proc.pid if sys.platform != "win32" else None)
    job.write_status(record)
    proc.stdin.close()          # handshake: the child may start now
    proc.returncode = 0         # we never wait for it; silence Popen's "still running" warning
    print(job_id, flush=True)
    sys.stderr.write(f"medseqft {name}: started job {job_id} in the background (pid {proc.pid}); "
                     f"events: {job.events_path}\n")
    return 0


def _install_handlers(reporter: JobReporter, foreground: bool) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}   # signals can only be handled on the main thread (e.g. a GUI test thread)
    previous = {}

    def on_term(signum, frame):
        reporter.request_cancel()

    def on_int(signum, frame):
        if reporter.cancel_requested:
            raise KeyboardInterrupt   # second Ctrl-C: stop now
        reporter.request_cancel()
        sys.stderr.write("\nstopping at the next safe point (Ctrl-C again to interrupt now)\n")

    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
    if foreground:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_int)
    return previous


def _run_job(job: JobFolder, args, run: Callable, console, foreground: bool) -> int:
    writer = EventWriter(job.events_path)
    reporter = JobReporter(job, writer, console=console)
    record = job.read_status()
    writer.emit("start", message="medseqft " + " ".join(record.get("argv") or []))
    previous = _install_handlers(reporter, foreground)

    def finish(event: str, state: str, code: int, message: Optional[str], level: str = "info") -> None:
        writer.emit(event, message=message, level=level, exit_code=code)
        job.update_status(state=state, exit_code=code, ended=time.time(), error=message if state == "failed" else None,
                          progress=reporter.last_progress)

    try:
        try:
            code = int(run(args, reporter) or 0)
        except Cancelled as exc:
            finish("cancelled", "cancelled", EXIT_CANCELLED, str(exc))
            raise
        except KeyboardInterrupt:
            finish("cancelled", "cancelled", EXIT_CANCELLED, "interrupted; rerun with --resume to continue")
            raise
        except InputError as exc:
            if foreground and not reporter.last_progress:
                # refused before any work: leave the workspace exactly as it was (the
                # error line on stderr says everything); a detached job keeps its folder
                # because the events file is how its launcher learns why it failed
                writer.close()
                shutil.rmtree(job.path, ignore_errors=True)
                try:
                    job.path.parent.rmdir()  # the jobs folder too, if this job created it
                except OSError:
                    pass
                raise
            finish("failed", "failed", EXIT_INPUT, str(exc), level="error")
            raise
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_INTERNAL)
            if code == 0:
                finish("done", "done", 0, None)
            else:
                finish("failed", "failed", code, f"exited with code {code}", level="error")
            raise
        except BaseException as exc:
            finish("failed", "failed", EXIT_INTERNAL, f"{type(exc).__name__}: {exc}", level="error")
            raise
        if code == 0:
            finish("done", "done", 0, None)
        else:
            finish("failed", "failed", code, f"exited with code {code}", level="error")
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        writer.close()
