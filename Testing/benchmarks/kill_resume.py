"""Kill a tiny ``refine`` with SIGKILL at random points, resume, and count clean recoveries.

    python Testing/benchmarks/kill_resume.py [--trials 20] [--seed 0] [--max-delay 2.0] [--fake]

One tiny workspace (2 phantom tasks of 4 cases, size-24 volumes, small_unet feature size 4,
16^3 patches, 10 iterations per stage; ``tiny_workspace.py``) is refined repeatedly: each
trial starts ``refine --resume``, waits for its first progress event plus a random delay
(uniform within an uninterrupted run's training time), SIGKILLs it and notes the sha256 of
every finished task's model files. After a chain of kills, ``refine --resume`` must run to
completion. A trial succeeds when that resume exits 0, every task is ``done``, and no file of a
task that was finished at the time of the kill changed.

``--fake`` runs the same protocol on the job tests' hash-chain command (no torch; seconds).
The test suite imports this file (``Testing/jobs/test_kill_resume.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FAKE_JOB = ROOT / "Testing" / "jobs" / "fake_job.py"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeDriver:
    """The hash-chain test job: tasks/t<i>/model.bin appear when a task is finished."""

    deterministic_resume = True   # a resumed hash chain must equal the uninterrupted one

    def __init__(self, tasks: int = 3, steps: int = 15, sleep: float = 0.01) -> None:
        self.tasks, self.steps, self.sleep = tasks, steps, sleep

    def setup(self, folder: Path) -> Path:
        from MedSeqFTLib.presets import preset
        from MedSeqFTLib.sequence.workspace import Workspace

        ws = folder / "ws"
        Workspace.create(ws, preset("cpu_demo"), {"source": "none (kill/resume test)"})
        return ws

    def command(self, ws: Path, resume: bool) -> list[str]:
        return [sys.executable, str(FAKE_JOB), "fakejob", str(ws), "--tasks", str(self.tasks),
                "--steps", str(self.steps), "--sleep", str(self.sleep)]

    def finished_files(self, ws: Path) -> dict:
        return {str(p.relative_to(ws)): sha256(p) for p in sorted(ws.glob("tasks/*/model.bin"))}

    def all_done(self, ws: Path) -> bool:
        return len(list(ws.glob("tasks/*/model.bin"))) == self.tasks


class RefineDriver:
    """The real ``medseqft refine`` on a tiny workspace; finished = task status ``done``."""

    deterministic_resume = False  # only finished tasks are compared (see docs/jobs.md)

    def setup(self, folder: Path) -> Path:
        from tiny_workspace import make_tiny_workspace  # noqa: E402  (Testing/benchmarks)

        return make_tiny_workspace(folder)

    def command(self, ws: Path, resume: bool) -> list[str]:
        return [sys.executable, "-m", "MedSeqFTLib", "refine", str(ws), "--device", "cpu"] + (["--resume"] if resume else [])

    def _done_tasks(self, ws: Path) -> list[str]:
        manifest = json.loads((ws / "workspace.json").read_text())
        done = []
        for name in manifest["tasks"]:
            rec = json.loads((ws / "tasks" / name / "task.json").read_text())
            if rec.get("status") == "done":
                done.append(name)
        return done

    def finished_files(self, ws: Path) -> dict:
        out = {}
        for name in self._done_tasks(ws):
            for p in sorted((ws / "tasks" / name / "model").rglob("*")):
                if p.is_file():
                    out[str(p.relative_to(ws))] = sha256(p)
        return out

    def all_done(self, ws: Path) -> bool:
        manifest = json.loads((ws / "workspace.json").read_text())
        return len(self._done_tasks(ws)) == len(manifest["tasks"])


def _newest_events(ws: Path, after: set) -> Path | None:
    jobs = ws / "jobs"
    if not jobs.is_dir():
        return None
    new = sorted(p for p in jobs.iterdir() if p.is_dir() and p.name not in after)
    return new[-1] / "events.jsonl" if new else None


def _saw_progress(events: Path | None) -> bool:
    if events is None or not events.exists():
        return False
    return b'"event": "progress"' in events.read_bytes()


def kill_once(driver, ws: Path, rng: random.Random, max_delay: float, timeout: float = 120.0) -> dict:
    """Start a resumed run, SIGKILL it after its first progress event + a random delay.

    Returns:
        ``{"killed": bool, "delay": s, "before": {file: sha}}`` where ``before`` are the finished
        tasks' files at the moment of the kill.
    """
    known = {p.name for p in (ws / "jobs").iterdir()} if (ws / "jobs").is_dir() else set()
    proc = subprocess.Popen(driver.command(ws, resume=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), cwd=str(ROOT))
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not _saw_progress(_newest_events(ws, known)) and time.monotonic() < deadline:
        time.sleep(0.02)
    delay = rng.uniform(0.0, max_delay)
    end = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {"killed": killed, "delay": delay, "before": driver.finished_files(ws), "rc": proc.returncode}


def resume_to_end(driver, ws: Path, timeout: float = 300.0) -> subprocess.CompletedProcess:
    return subprocess.run(driver.command(ws, resume=True), capture_output=True, text=True, env=_env(),
                          cwd=str(ROOT), timeout=timeout)


def check_trial(driver, ws: Path, before: dict, proc: subprocess.CompletedProcess) -> list[str]:
    """Problems of one recovery (empty list = success)."""
    problems = []
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        problems.append(f"resume exited {proc.returncode}: {' | '.join(tail)}")
    if not driver.all_done(ws):
        problems.append("not every task is done after the resume")
    after = driver.finished_files(ws)
    for name, digest in before.items():
        if after.get(name) != digest:
            problems.append(f"{name} changed after the resume")
    return problems


def reference_run(driver, pristine: Path, folder: Path) -> tuple[float, dict]:
    """An uninterrupted run on a copy: (seconds from first progress event to the end, final files)."""
    ref = folder / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    shutil.copytree(pristine, ref)
    proc = subprocess.Popen(driver.command(ref, resume=True), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_env(), cwd=str(ROOT))
    while proc.poll() is None and not _saw_progress(_newest_events(ref, set())):
        time.sleep(0.02)
    t0 = time.monotonic()
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the reference run failed (exit {proc.returncode}): {err.strip().splitlines()[-3:]}")
    return time.monotonic() - t0, driver.finished_files(ref)


def run_trials(driver, folder: Path, trials: int, seed: int, max_delay=None, kills_per_chain: int = 5,
               log=print) -> tuple[int, list]:
    """Run ``trials`` kill/resume trials; returns (successes, [problems per failed trial]).

    Trials run in chains on one fresh copy of the workspace: up to ``kills_per_chain`` runs of
    ``refine --resume`` are each SIGKILLed at a uniformly random time within the measured
    training time of an uninterrupted reference run (or ``max_delay`` s after the first
    progress event), then one last resume must complete. A trial (one kill) succeeds when the
    chain's final resume exits 0 with every task done and no file of a task that was finished
    at the time of that kill changed afterwards (and, for a deterministic driver, when the
    final files equal the uninterrupted run's).
    """
    rng = random.Random(seed)
    pristine = driver.setup(folder / "pristine")
    reference = None
    if max_delay is None or driver.deterministic_resume:
        train_s, reference = reference_run(driver, pristine, folder)
        log(f"reference run: {train_s:.1f} s of training, {len(reference)} model file(s)")
        max_delay = 0.9 * train_s if max_delay is None else max_delay
    work = folder / "work"
    failures = []
    ok = done = 0
    while done < trials:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        chain = []
        while len(chain) < min(kills_per_chain, trials - done):
            k = kill_once(driver, work, rng, max_delay)
            if not k["killed"]:
                if k["rc"] != 0:
                    failures.append([f"a resumed run exited {k['rc']} on its own"])
                    done += 1
                    log(f"trial {done:2d}: FAILED: the resumed run exited {k['rc']} before the kill")
                    break
                if driver.all_done(work):
                    break   # the chain finished by itself: the final resume below is a no-op run
                continue
            chain.append(k)
        proc = resume_to_end(driver, work)
        for k in chain:
            problems = check_trial(driver, work, k["before"], proc)
            if not problems and driver.deterministic_resume and driver.finished_files(work) != reference:
                problems.append("the resumed result differs from the uninterrupted run")
            done += 1
            status = "ok" if not problems else "FAILED: " + "; ".join(problems)
            log(f"trial {done:2d}: killed after +{k['delay']:.2f}s with {len(k['before'])} finished file(s) -> {status}")
            if problems:
                failures.append(problems)
            else:
                ok += 1
        if not chain:
            max_delay *= 0.5   # runs finish faster than the reference: kill earlier
    return ok, failures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-delay", type=float, default=None, help="largest random delay after the first progress event (s); default: the training time of an uninterrupted run")
    p.add_argument("--fake", action="store_true", help="use the hash-chain test job instead of refine")
    p.add_argument("--kills-per-chain", type=int, default=4, help="kills before each completing resume (default 4)")
    p.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp folder)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    driver = FakeDriver() if args.fake else RefineDriver()
    import tempfile

    folder = args.keep or Path(tempfile.mkdtemp(prefix="kill_resume_"))
    t0 = time.perf_counter()
    ok, failures = run_trials(driver, folder, args.trials, args.seed, args.max_delay, args.kills_per_chain)
    print(f"{ok}/{args.trials} kill/resume trials succeeded ({time.perf_counter() - t0:.0f} s, "
          f"{'fake job' if args.fake else 'refine'})")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
