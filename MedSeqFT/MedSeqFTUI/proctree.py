"""Start a launcher so that its whole process tree can be stopped, and stop it.

Slicer's ``PythonSlicer`` is a launcher: it sets up the environment and starts the real python
as its child. Terminating the launcher alone leaves that child running, and the child then goes
on to start the job. So a launcher is started as the leader of its own process group (POSIX: a
new session; Windows: a new process group) and stopped as a tree: with psutil (one of the
library's requirements) its descendants are terminated one by one; without it the whole group
gets the signal (POSIX) or ``taskkill /T`` stops the tree (Windows). A job worker that the
``--detach`` call already started leads its own session and is not part of the tree: the
library's ``cancel`` command stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import List

__all__ = ["group_popen_kwargs", "terminate_tree", "kill_tree", "tree_alive"]


def group_popen_kwargs() -> dict:
    """``subprocess.Popen`` keyword arguments that make the process lead its own group."""
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)
                | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    return {"start_new_session": True}


def _descendants(pid: int) -> List[int]:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except (psutil.Error, OSError):
        return []


def _signal_tree(proc: subprocess.Popen, sig) -> None:
    pids = [proc.pid] + _descendants(proc.pid)
    if os.name == "nt":
        if len(pids) == 1:  # no psutil: let Windows walk the tree
            subprocess.run(["taskkill", "/PID", str(proc.pid), "/T", "/F"], capture_output=True)
            return
        for pid in reversed(pids):
            try:
                os.kill(pid, signal.SIGTERM)  # TerminateProcess on Windows
            except OSError:
                pass
        return
    try:
        os.killpg(proc.pid, sig)  # the launcher leads its group: launcher + python child
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids[1:]:  # children that left the group (psutil only)
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def terminate_tree(proc: subprocess.Popen) -> None:
    """Ask ``proc`` and its descendants to stop (SIGTERM; returns at once)."""
    _signal_tree(proc, signal.SIGTERM)


def kill_tree(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and its descendants now (SIGKILL where there is one)."""
    _signal_tree(proc, getattr(signal, "SIGKILL", signal.SIGTERM))


def tree_alive(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` or a process of its group still runs (reaps ``proc`` if it ended)."""
    if proc.poll() is None:
        return True
    if os.name == "nt":
        return bool(_descendants(proc.pid))
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
