"""Process identity (pid + start time + host) and the workspace lock's stale-lock handling."""

import json
import os
import subprocess
import sys

import pytest

from MedSeqFTLib.errors import InputError
from MedSeqFTLib.jobs.job_folder import effective_state
from MedSeqFTLib.jobs.process import ProcessIdentity, host_name, liveness, pid_exists, process_start
from MedSeqFTLib.sequence.lock import WorkspaceLock


def test_identity_of_self_dead_child_zombie_and_reused_pid():
    me = ProcessIdentity.current()
    assert liveness(me) == "alive"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ident = ProcessIdentity.of(child.pid)
    assert ident.start is not None
    wait_zombie = __import__("time").time() + 10
    while __import__("time").time() < wait_zombie and pid_exists(child.pid):
        __import__("time").sleep(0.01)
    assert not pid_exists(child.pid)            # exited but not reaped: a zombie counts as dead
    assert liveness(ident) == "dead"
    child.wait()
    assert liveness(ident) == "dead"
    # our own pid with another start time = a reused pid
    assert liveness(ProcessIdentity(me.pid, host_name(), me.start + 1)) == "dead"
    assert liveness(ProcessIdentity(me.pid, "another-host", None)) == "other_host"
    assert process_start(me.pid) == me.start


def test_running_status_with_dead_or_reused_pid_is_died():
    me = ProcessIdentity.current()
    rec = {"state": "running", **me.to_record()}
    assert effective_state(rec) == "running"
    assert effective_state({**rec, "pid_start": me.start + 5}) == "died"
    assert effective_state({**rec, "pid": 2 ** 22 + 12345}) == "died"
    assert effective_state({**rec, "host": "elsewhere"}) == "running"   # cannot check: trust it
    assert effective_state({**rec, "state": "done"}) == "done"
    assert effective_state({"state": "starting", "pid": None, "started": 0.0}) == "died"


def test_stale_lock_of_killed_process_is_taken_and_live_one_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from MedSeqFTLib.sequence.lock import WorkspaceLock\n"
        "WorkspaceLock(%r, 'refine').acquire()\n"
        "print('locked', flush=True); time.sleep(60)\n") % (os.getcwd(), str(tmp_path))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="locked by pid"):
            WorkspaceLock(tmp_path, "select").acquire()
    finally:
        holder.kill()
        holder.wait()
    with WorkspaceLock(tmp_path, "select") as lock:
        assert json.loads(lock.path.read_text())["command"] == "select"
    assert not (tmp_path / ".lock").exists()
    assert not list(tmp_path.glob(".lock.stale.*"))


def test_other_host_lock_needs_force_and_damaged_lock_needs_age(tmp_path):
    lock_file = tmp_path / ".lock"
    lock_file.write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "refine", "time": 0}))
    with pytest.raises(InputError, match="elsewhere.*--force"):
        WorkspaceLock(tmp_path, "select").acquire()
    with WorkspaceLock(tmp_path, "select", force=True):
        assert json.loads(lock_file.read_text())["host"] == host_name()
    lock_file.write_text("{not json")
    with pytest.raises(InputError, match="unknown process"):
        WorkspaceLock(tmp_path, "select").acquire()
    os.utime(lock_file, (0, 0))                  # an old unreadable lock is stale
    with WorkspaceLock(tmp_path, "select"):
        pass


def test_clearing_a_stale_lock_never_steals_a_fresh_one(tmp_path):
    # A judged the lock stale, but B replaced it with a live lock before A's rename:
    # A must put B's lock back.
    lock = WorkspaceLock(tmp_path, "a")
    stale = {"pid": 2 ** 22 + 7, "host": host_name(), "start_time": "1", "command": "old", "time": 0}
    fresh = {"pid": os.getpid(), "host": host_name(), "start_time": None, "command": "b", "time": 1}
    (tmp_path / ".lock").write_text(json.dumps(fresh))
    lock._clear_stale(stale)
    assert json.loads((tmp_path / ".lock").read_text()) == fresh
    (tmp_path / ".lock").write_text(json.dumps(stale))
    lock._clear_stale(stale)
    assert not (tmp_path / ".lock").exists()
