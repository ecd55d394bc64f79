"""JobProcess + EventsReader against a real fake CLI process (fake_cli.py), no mocks."""

import json
import os
import sys
from pathlib import Path

import pytest

from MedSeqFTUI.events import EventsReader, JobSummary, format_duration
from MedSeqFTUI.jobprocess import JobProcess, find_running_job, pid_alive
from job_polling import run_until  # noqa: E402

FAKE = [sys.executable, str(Path(__file__).with_name("fake_cli.py"))]


def test_events_reader_is_incremental_and_keeps_partial_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    reader = EventsReader(path)
    assert reader.read_new() == []  # file not there yet
    with open(path, "w") as fh:
        fh.write(json.dumps({"event": "start", "time": 1.0}) + "\n" + '{"event": "progr')
    assert [e["event"] for e in reader.read_new()] == ["start"]
    first_offset = reader.offset
    with open(path, "a") as fh:
        fh.write('ess", "step": 3, "total": 10}\nnot json\n')
    evs = reader.read_new()
    assert evs == [{"event": "progress", "step": 3, "total": 10}]
    assert reader.bad_lines == 1
    assert reader.offset == path.stat().st_size > first_offset
    assert reader.read_new() == []


def test_events_reader_bounds_bytes_per_poll(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps({"event": "progress", "step": i, "total": 500}) for i in range(500)]
    path.write_text("\n".join(lines) + "\n")
    reader = EventsReader(path, max_bytes=1000)
    seen = []
    polls = 0
    while True:
        new = reader.read_new()
        polls += 1
        if not new and reader.offset == path.stat().st_size:
            break
        seen += new
    assert [e["step"] for e in seen] == list(range(500))
    assert polls >= path.stat().st_size // 1000


def test_summary_and_durations():
    s = JobSummary()
    s.apply({"event": "start", "time": 100.0, "stage": "fft", "task": "liver", "message": "go"})
    s.apply({"event": "progress", "time": 101.0, "stage": "fft", "task": "liver", "step": 5, "total": 20, "eta_s": 75})
    assert (s.stage, s.task, s.step, s.total, s.fraction) == ("fft", "liver", 5, 20, 0.25)
    assert len(s.log_lines) == 1 and "go" in s.log_lines[0]
    s.apply({"event": "failed", "time": 102.0, "message": "out of memory", "level": "error"})
    assert s.final == "failed" and "ERROR: out of memory" in s.log_lines[-1]
    assert format_duration(75) == "1 min 15 s" and format_duration(3725) == "1 h 02 min"
    assert format_duration(None) == "--" and format_duration(9) == "9 s"


def test_run_to_completion(tmp_path):
    job = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ))
    job.start("refine", ["--steps", "8", "--step-s", "0.02"])
    assert job.state == "launching"
    events = run_until(job, lambda evs: job.state == "done")
    summary = JobSummary()
    for ev in events:
        summary.apply(ev)
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(1, 9))
    assert summary.final == "done" and summary.fraction == 1.0
    assert (job.job_dir / "events.jsonl").is_file() and job.job_id == job.job_dir.name
    assert find_running_job(tmp_path) is None


def test_cancel_then_resume_continues_from_checkpoint(tmp_path):
    job = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ))
    job.start("refine", ["--steps", "400", "--step-s", "0.02"])
    run_until(job, lambda evs: any(e.get("step", 0) >= 3 for e in evs))
    assert find_running_job(tmp_path) == job.job_dir  # what a reopened panel would attach to
    job.cancel()
    events = run_until(job, lambda evs: job.state == "cancelled")
    assert events[-1]["event"] == "cancelled"
    stopped_at = json.loads((tmp_path / "fake_checkpoint.json").read_text())["step"]
    assert 3 <= stopped_at < 400

    job.start("refine", ["--steps", str(stopped_at + 4), "--step-s", "0.02", "--resume"])
    events = run_until(job, lambda evs: job.state == "done")
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert steps == list(range(stopped_at + 1, stopped_at + 5))


def test_crash_is_reported_as_failed(tmp_path):
    job = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ), liveness_every_s=0.1)
    job.start("refine", ["--steps", "50", "--step-s", "0.02", "--crash-at", "4"])
    events = run_until(job, lambda evs: job.state == "failed")
    assert events[-1].get("synthesized") and "ended without a final event" in job.error
    assert not pid_alive(job.pid)


def test_bad_input_launch_reports_the_one_line(tmp_path):
    job = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ))
    job.start("bad")
    events = run_until(job, lambda evs: job.state == "failed")
    assert job.exit_code == 2 and job.error.endswith("no workspace.json here")
    assert events[0]["message"] == job.error


def test_reattach_replays_events_of_a_running_job(tmp_path):
    first = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ))
    first.start("refine", ["--steps", "30", "--step-s", "0.03"])
    run_until(first, lambda evs: any(e.get("step", 0) >= 2 for e in evs))
    # a second panel (Slicer reopened) finds and follows the same job
    job_dir = find_running_job(tmp_path)
    second = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ))
    second.attach(job_dir)
    events = run_until(second, lambda evs: second.state == "done")
    assert events[0]["event"] == "start"
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(1, 31))


def test_start_twice_is_refused(tmp_path):
    job = JobProcess(tmp_path, cli_prefix=FAKE, env=dict(os.environ))
    job.start("refine", ["--steps", "3", "--step-s", "0.01"])
    with pytest.raises(RuntimeError):
        job.start("refine")
    run_until(job, lambda evs: job.state == "done")
