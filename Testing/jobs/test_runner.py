"""The job runner end to end, with a real process running the fake JOB command through the CLI."""

import json
import os
import signal
import subprocess

import pytest

from jobs_helpers import env, events, fake_cmd, medseqft, the_job, wait_for
from MedSeqFTLib.jobs.job_folder import JobFolder, list_jobs


def test_foreground_job_writes_events_status_and_console(fake_ws):
    proc = subprocess.run(fake_cmd(fake_ws, "--tasks", 2, "--steps", 6, "--sleep", 0.03), capture_output=True,
                          text=True, env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    job = the_job(fake_ws)
    evs = events(job)
    assert evs[0]["event"] == "start" and "fakejob" in evs[0]["message"]
    assert evs[-1]["event"] == "done" and evs[-1]["exit_code"] == 0
    prog = [e for e in evs if e["event"] == "progress"]
    # first and last step of each stage are always written
    assert {(e["task"], e["step"]) for e in prog} >= {("t0", 1), ("t0", 6), ("t1", 1), ("t1", 6)}
    assert all(e["total"] == 6 and e["stage"] == "fft" for e in prog)
    assert prog[-1]["losses"] == {"loss": pytest.approx(1 / 6)}
    # once a step was timed the ETA is known, and it ends at 0
    assert prog[-1]["eta_s"] == 0.0 and any(e["eta_s"] and e["eta_s"] > 0 for e in prog)
    times = [e["time"] for e in evs]
    assert times == sorted(times)
    st = json.loads((job / "status.json").read_text())
    assert st["state"] == "done" and st["exit_code"] == 0 and st["command"] == "fakejob"
    assert st["argv"][:2] == ["fakejob", str(fake_ws)] and st["ended"] >= st["started"]
    assert st["progress"]["task"] == "t1" and st["progress"]["step"] == 6
    assert "fft[t1]" in proc.stderr and "6/6" in proc.stderr        # console progress still shown
    assert not (fake_ws / ".lock").exists()


def test_failure_is_recorded_with_the_error_and_exit_code(fake_ws):
    proc = subprocess.run(fake_cmd(fake_ws, "--steps", 5, "--sleep", 0, "--fail-at", 3), capture_output=True,
                          text=True, env=env(), timeout=60)
    assert proc.returncode == 1
    last = events(the_job(fake_ws))[-1]
    assert last["event"] == "failed" and last["level"] == "error" and last["exit_code"] == 1
    assert "RuntimeError: planned failure at step 3" in last["message"]
    st = JobFolder(the_job(fake_ws)).read_status()
    assert st["state"] == "failed" and st["exit_code"] == 1 and "planned failure" in st["error"]


def test_no_job_folder_is_created_for_a_missing_workspace(tmp_path):
    proc = subprocess.run(fake_cmd(tmp_path / "nope", "--detach"), capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 2 and "not a workspace" in proc.stderr
    assert not (tmp_path / "nope").exists()


def test_detach_status_cancel(fake_ws):
    launch = subprocess.run(fake_cmd(fake_ws, "--steps", 2000, "--sleep", 0.02, "--detach"), capture_output=True,
                            text=True, env=env(), timeout=60)
    assert launch.returncode == 0, launch.stderr
    job_id = launch.stdout.strip()
    job = JobFolder(fake_ws / "jobs" / job_id)
    assert job.path.is_dir() and "--detach" not in job.read_status()["argv"]
    wait_for(lambda: any(e["event"] == "progress" and e["step"] >= 3 for e in events(job.path)))
    st = medseqft("status", fake_ws, "--json")
    assert st.returncode == 0, st.stderr
    (row,) = json.loads(st.stdout)["jobs"]
    assert row["id"] == job_id and row["state"] == "running" and row["progress"]["stage"] == "fft"
    pid = row["pid"]
    text = medseqft("status", fake_ws).stdout
    assert f"{job_id} fakejob [running] fft[t0]" in text and "eta" in text

    cancel = medseqft("cancel", fake_ws, "--timeout", 20)
    assert cancel.returncode == 0, cancel.stderr
    assert "cancelled cleanly" in cancel.stdout
    last = events(job.path)[-1]
    assert last["event"] == "cancelled" and last["exit_code"] == 3
    final = job.read_status()
    assert final["state"] == "cancelled" and final["exit_code"] == 3
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z")
    assert "cancelled" in job.log_path.read_text()
    assert not (fake_ws / ".lock").exists()             # the job released the workspace lock
    # resumable: the checkpoint of the interrupted task is there
    assert json.loads((fake_ws / "tasks" / "t0" / "ckpt.json").read_text())["step"] >= 3
    assert "[cancelled]" in medseqft("status", fake_ws).stdout
    again = medseqft("cancel", fake_ws)
    assert again.returncode == 2 and "no running job" in again.stderr


def test_cancel_escalates_to_sigkill_for_a_job_that_ignores_it(fake_ws):
    launch = subprocess.run(fake_cmd(fake_ws, "--steps", 5000, "--sleep", 0.02, "--ignore-cancel", "--detach"),
                            capture_output=True, text=True, env=env(), timeout=60)
    job = JobFolder(fake_ws / "jobs" / launch.stdout.strip())
    wait_for(lambda: any(e["event"] == "progress" for e in events(job.path)))
    cancel = medseqft("cancel", fake_ws, "--job", job.id[:-2], "--timeout", 0.5)
    assert cancel.returncode == 0 and "killed and marked cancelled" in cancel.stdout, cancel.stderr
    final = job.read_status()
    assert final["state"] == "cancelled" and final["exit_code"] == 3
    assert events(job.path)[-1]["event"] == "cancelled"
    assert list_jobs(fake_ws / "jobs")[0]["effective_state"] == "cancelled"


def test_sigkilled_job_shows_as_died_and_its_lock_is_cleared(fake_ws):
    proc = subprocess.Popen(fake_cmd(fake_ws, "--steps", 5000, "--sleep", 0.02), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env())
    job = wait_for(lambda: list((fake_ws / "jobs").glob("*/events.jsonl")) and the_job(fake_ws))
    wait_for(lambda: any(e["event"] == "progress" for e in events(job)))
    assert (fake_ws / ".lock").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert JobFolder(job).read_status()["state"] == "running"       # what the file says...
    st = medseqft("status", fake_ws, "--json")
    assert json.loads(st.stdout)["jobs"][0]["state"] == "died"      # ...and what status shows
    assert "[died]" in medseqft("status", fake_ws).stdout
    # the dead job's lock does not block the resumed run, which finishes the work
    done = subprocess.run(fake_cmd(fake_ws, "--steps", 50, "--sleep", 0), capture_output=True, text=True, env=env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert (fake_ws / "tasks" / "t1" / "model.bin").exists()
