"""The workspace lock refuses a second live writer and clears stale locks of dead processes."""

import json
import os
import subprocess
import sys
import time

import pytest

from MedSeqFTLib.errors import InputError
from MedSeqFTLib.sequence.lock import WorkspaceLock, pid_alive, process_start_time


def test_second_writer_is_refused_while_owner_lives(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from MedSeqFTLib.sequence.lock import WorkspaceLock\n"
        "with WorkspaceLock(%r, 'refine'):\n"
        "    print('locked', flush=True); time.sleep(30)\n") % (os.getcwd(), str(tmp_path))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=r"workspace is locked by pid \d+ .* running 'refine'"):
            with WorkspaceLock(tmp_path, "add-task"):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the owner is dead now: its lock is stale and is taken over
    with WorkspaceLock(tmp_path, "add-task") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_reused_pid_counts_as_dead(tmp_path):
    me = os.getpid()
    assert pid_alive(me, process_start_time(me))
    assert not pid_alive(me, "1")  # same pid, different start time: another process
    (tmp_path / ".lock").write_text(json.dumps({"pid": me, "host": os.uname().nodename, "start_time": "1", "command": "x"}))
    with WorkspaceLock(tmp_path, "y"):
        pass


def test_lock_of_other_host_is_respected(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "refine", "time": time.time()}))
    with pytest.raises(InputError, match="elsewhere"):
        WorkspaceLock(tmp_path, "y").acquire()
