"""``medseqft cancel WS [--job ID] [--timeout S]``: stop a running job, leaving WS resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "stop the running job of a workspace gracefully (SIGKILL after --timeout); rerun with --resume later"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="the workspace, or a folder of job folders (a demo's or --job-dir's)")
    p.add_argument("--job", default=None, help="job id or a unique prefix of it (default: the one running job)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for a clean stop before killing the job (default 30)")


def _jobs_root(path: Path) -> Path:
    from ..errors import InputError

    def holds_jobs(folder: Path) -> bool:
        return folder.is_dir() and any((p / "status.json").is_file() for p in folder.iterdir() if p.is_dir())

    if (path / "workspace.json").is_file():
        return path / "jobs"
    for candidate in (path / "jobs", path):   # a demo's --out folder, or a --job-dir folder
        if holds_jobs(candidate):
            return candidate
    raise InputError(path, "not a workspace (no workspace.json) and no job folders in it")


def run(args, reporter) -> int:
    from ..errors import InputError
    from ..jobs.cancel import cancel_job, find_job

    if args.timeout < 0:
        raise InputError("--timeout", f"must be >= 0 seconds, got {args.timeout}")
    job = find_job(_jobs_root(args.workspace), args.job)
    how = cancel_job(job, timeout_s=args.timeout, log=lambda m: sys.stderr.write(m + "\n"))
    messages = {
        "graceful": f"job {job.id} cancelled cleanly",
        "killed": f"job {job.id} killed and marked cancelled",
        "already_finished": f"job {job.id} had already finished",
        "requested": f"job {job.id} runs on another host: a cancel request was written; it stops at its next safe point",
    }
    print(messages[how])
    return 0
