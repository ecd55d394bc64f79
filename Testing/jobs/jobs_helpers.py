"""Helpers for the job tests: a workspace stand-in and the fake JOB command as a real process."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parent / "fake_job.py"


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p])
    return e


@pytest.fixture
def fake_ws(tmp_path):
    """A real, empty workspace (no foundation model: the fake job does not need one)."""
    from MedSeqFTLib.presets import preset
    from MedSeqFTLib.sequence.workspace import Workspace

    ws = tmp_path / "ws"
    Workspace.create(ws, preset("cpu_demo"), {"source": "none (job tests)"})
    return ws


def fake_cmd(ws, *args):
    return [sys.executable, str(FAKE), "fakejob", str(ws), *map(str, args)]


def medseqft(*args, timeout=60):
    """``python -m MedSeqFTLib ARGS`` as a process; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "MedSeqFTLib", *map(str, args)], capture_output=True, text=True,
                          env=env(), cwd=str(ROOT), timeout=timeout)


def wait_for(predicate, timeout=20.0, poll=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


def the_job(ws):
    jobs = sorted((Path(ws) / "jobs").iterdir())
    assert len(jobs) == 1, jobs
    return jobs[0]


def events(job_dir):
    from MedSeqFTLib.jobs.events import read_events

    return list(read_events(Path(job_dir) / "events.jsonl"))
