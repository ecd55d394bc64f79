"""A real stand-in for ``python -m MedSeqFTLib`` that follows the job contract of docs/CONTRACTS.md.

Used by the job-process tests (it is run as a process, not mocked). Commands:

    fake_cli.py refine WS [--steps N] [--step-s S] [--crash-at K] [--resume] [--detach]
    fake_cli.py cancel WS
    fake_cli.py bad WS             exits 2 with one line on stderr (bad input)

``--detach`` prints the job id and returns at once; the worker (this script again with
``--worker ID``) appends events to ``WS/jobs/ID/events.jsonl`` and keeps ``status.json``
(``pid``, ``state``, ``command``) up to date. SIGTERM (what ``cancel`` sends) stops it at
the next step with a ``cancelled`` event and exit 3; ``--resume`` continues from the last
checkpointed step in ``WS/fake_checkpoint.json``.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path


def write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def emit(fh, **ev):
    ev.setdefault("time", time.time())
    fh.write(json.dumps(ev) + "\n")
    fh.flush()


def worker(args):
    ws = Path(args.ws)
    job_dir = ws / "jobs" / args.worker
    status = {"job_id": args.worker, "pid": os.getpid(), "command": "refine", "state": "running", "started": time.time()}
    write_json(job_dir / "status.json", status)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    ckpt = ws / "fake_checkpoint.json"
    start = json.loads(ckpt.read_text())["step"] if (args.resume and ckpt.exists()) else 0
    with open(job_dir / "events.jsonl", "a", encoding="utf-8") as fh:
        emit(fh, event="start", stage="fft", task="liver", message=f"refine started at step {start}")
        t0 = time.monotonic()
        for step in range(start + 1, args.steps + 1):
            if stop["flag"]:
                emit(fh, event="cancelled", stage="fft", task="liver", message=f"cancelled at step {step - 1}")
                write_json(job_dir / "status.json", dict(status, state="cancelled"))
                return 3
            if args.crash_at and step == args.crash_at:
                os._exit(9)  # no final event, status still "running": a crash
            time.sleep(args.step_s)
            rate = (time.monotonic() - t0) / (step - start)
            emit(fh, event="progress", stage="fft", task="liver", step=step, total=args.steps,
                 losses={"dice_ce": 1.0 / step}, eta_s=rate * (args.steps - step),
                 message="checkpoint saved" if step % 5 == 0 else None)
            write_json(ckpt, {"step": step})
        emit(fh, event="done", stage="fft", task="liver", message="refine finished")
    write_json(job_dir / "status.json", dict(status, state="done"))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("ws")
    p.add_argument("--steps", type=int, default=int(os.environ.get("FAKE_CLI_STEPS", "20")))
    p.add_argument("--step-s", type=float, default=float(os.environ.get("FAKE_CLI_STEP_S", "0.05")))
    p.add_argument("--crash-at", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--detach", action="store_true")
    p.add_argument("--worker")
    args, _ = p.parse_known_args()  # the panels pass --device, --lora-rank, ... as the real CLI takes them
    ws = Path(args.ws)
    if args.command == "bad":
        sys.stderr.write(f"medseqft bad: error: {ws}: no workspace.json here\n")
        return 2
    if args.command == "cancel":
        for sf in ws.glob("jobs/*/status.json"):
            st = json.loads(sf.read_text())
            if st.get("state") == "running":
                try:
                    os.kill(int(st["pid"]), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return 0
    if args.command in ("init", "add-task", "select", "evaluate") or (args.command == "refine" and not args.detach and not args.worker):
        # foreground steps of a batch sequence: record the call; a missing dataset is bad input
        if args.command == "add-task" and not Path(sys.argv[3]).is_dir():
            sys.stderr.write(f"medseqft add-task: error: {sys.argv[3]}: dataset folder not found\n")
            return 2
        ws.mkdir(parents=True, exist_ok=True)
        if args.command == "init":
            (ws / "workspace.json").write_text("{}")
        with open(ws / "calls.txt", "a") as fh:
            fh.write(" ".join([args.command] + sys.argv[3:]) + "\n")
        return 0
    if args.command == "refine":
        if args.worker:
            return worker(args)
        if not args.detach:
            return 2
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        (ws / "jobs" / job_id).mkdir(parents=True)
        argv = [sys.executable, __file__, "refine", str(ws), "--worker", job_id, "--steps", str(args.steps),
                "--step-s", str(args.step_s), "--crash-at", str(args.crash_at)] + (["--resume"] if args.resume else [])
        subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(job_id)
        return 0
    sys.stderr.write(f"fake_cli: unknown command {args.command}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
