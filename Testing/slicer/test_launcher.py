"""Jobs started through a launcher that, like Slicer's ``PythonSlicer``, runs python as a child.

fake_pythonslicer.py is a real launcher process: it starts ``python fake_cli.py ...`` as its
child and dies alone on SIGTERM. Cancel during the launch must stop that child too (else the
child goes on to start the job), and the interpreter fallback must never be Slicer's GUI
executable (``sys.executable`` is ``SlicerApp-real`` inside Slicer).
"""

import os
import sys
import time
from pathlib import Path

import pytest

from MedSeqFTUI import jobprocess
from MedSeqFTUI.jobprocess import JobProcess, default_cli_prefix, find_running_job, pid_alive
from job_polling import run_until  # noqa: E402

HERE = Path(__file__).resolve().parent
LAUNCHER = [sys.executable, str(HERE / "fake_pythonslicer.py"), str(HERE / "fake_cli.py")]


def child_pids(path: Path):
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def test_detached_job_through_the_launcher(tmp_path):
    pids = tmp_path / "children.txt"
    ws = tmp_path / "ws"
    ws.mkdir()
    job = JobProcess(ws, LAUNCHER, env=dict(os.environ, FAKE_LAUNCHER_CHILD_PIDS=str(pids)))
    job.start("refine", ["--steps", "6", "--step-s", "0.02"])
    events = run_until(job, lambda evs: job.state == "done")
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(1, 7))
    (launch_child,) = child_pids(pids)  # the --detach call ran as the launcher's child and printed the id
    assert wait_gone(launch_child) and job.job_dir.parent == ws / "jobs"


def test_cancel_while_launching_stops_the_launchers_python_child(tmp_path):
    """Finding: Cancel during the launch terminated only the PythonSlicer launcher; its python
    child lived on and started the job anyway."""
    pids = tmp_path / "children.txt"
    ws = tmp_path / "ws"
    ws.mkdir()
    env = dict(os.environ, FAKE_LAUNCHER_CHILD_PIDS=str(pids), FAKE_CLI_DETACH_DELAY_S="2.5")
    job = JobProcess(ws, LAUNCHER, env=env)
    job.start("refine", ["--steps", "400", "--step-s", "0.05"])
    deadline = time.monotonic() + 10
    while not child_pids(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    (launch_child,) = child_pids(pids)
    assert job.state == "launching" and pid_alive(launch_child)
    job.cancel()
    events = run_until(job, lambda evs: job.state == "cancelled", timeout=15)
    assert events[-1]["event"] == "cancelled" and "starting" in events[-1]["message"]
    assert wait_gone(launch_child), "the launcher's python child survived Cancel"
    time.sleep(3.0)  # past the slow start: a surviving child would have started the worker by now
    assert find_running_job(ws) is None
    assert not list((ws / "jobs").glob("*/status.json")) if (ws / "jobs").exists() else True


def test_fallback_interpreter_is_never_slicers_gui_executable(monkeypatch, tmp_path):
    """Finding: without PythonSlicer on PATH the old fallback was sys.executable, which inside
    Slicer's GUI is SlicerApp-real (the application, not a python)."""
    bin_dir = tmp_path / "Slicer-5.10" / "bin"
    bin_dir.mkdir(parents=True)
    gui = bin_dir / "SlicerApp-real"
    gui.write_text("")
    monkeypatch.setattr(jobprocess.shutil, "which", lambda name: None)
    monkeypatch.setattr(jobprocess.sys, "executable", str(gui))
    with pytest.raises(RuntimeError, match="cannot find Slicer's PythonSlicer.*SlicerApp-real is not a Python"):
        default_cli_prefix()
    (bin_dir / "PythonSlicer").write_text("")
    assert default_cli_prefix() == [str(bin_dir / "PythonSlicer"), "-m", "MedSeqFTLib"]
    monkeypatch.setattr(jobprocess.sys, "executable", "/opt/venv/bin/python3.12")
    assert default_cli_prefix()[0] == "/opt/venv/bin/python3.12"  # outside Slicer: this python
    monkeypatch.setattr(jobprocess.shutil, "which", lambda name: "/opt/Slicer/bin/PythonSlicer")
    assert default_cli_prefix()[0] == "/opt/Slicer/bin/PythonSlicer"


def test_controller_resolves_the_interpreter_only_when_it_runs_something(monkeypatch, tmp_path):
    from MedSeqFTUI.controller import Controller, Prompts

    monkeypatch.setattr(jobprocess.shutil, "which", lambda name: None)
    monkeypatch.setattr(jobprocess.sys, "executable", str(tmp_path / "SlicerApp-real"))
    prompts = Prompts()
    controller = Controller(prompts=prompts)  # the module widget still builds
    with pytest.raises(RuntimeError, match="PythonSlicer"):
        controller.cli_prefix
