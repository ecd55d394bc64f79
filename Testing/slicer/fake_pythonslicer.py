"""A stand-in for Slicer's ``PythonSlicer`` launcher: like the real one, it sets up nothing of
its own but starts the real python as a *child process* with the same arguments, lets it inherit
stdin/stdout/stderr, waits for it and exits with its exit code.

SIGTERM stops only this launcher (the default action), never the child: that is the behaviour
that made "Cancel while launching" leave the job's python running. ``$FAKE_LAUNCHER_CHILD_PIDS``
names a file the launcher appends its child's pid to, so tests can check the child is gone.

Usage (as a CLI prefix): ``[sys.executable, "fake_pythonslicer.py", "-m", "MedSeqFTLib", ...]``
or ``[sys.executable, "fake_pythonslicer.py", "fake_cli.py", ...]``.
"""

import os
import subprocess
import sys


def main() -> int:
    child = subprocess.Popen([sys.executable] + sys.argv[1:])
    pid_file = os.environ.get("FAKE_LAUNCHER_CHILD_PIDS")
    if pid_file:
        with open(pid_file, "a", encoding="utf-8") as fh:
            fh.write(f"{child.pid}\n")
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
