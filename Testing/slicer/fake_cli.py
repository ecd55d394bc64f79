"""A real stand-in for ``python -m MedSeqFTLib`` that follows the job contract of docs/CONTRACTS.md.

Used by the job-process tests (it is run as a process, not mocked). Commands:

    fake_cli.py refine WS [--steps N] [--step-s S] [--crash-at K] [--resume] [--detach]
    fake_cli.py cancel WS
    fake_cli.py bad WS             exits 2 with one line on stderr (bad input)
    fake_cli.py plan WS [--task T] [--set K=V ...] [--unset K ...] [--json]
    fake_cli.py status WS --json

``plan`` follows ``medseqft plan``: it reads ``task.json`` ``plan`` and the overrides of
``workspace.json``/``task.json``, records ``--set``/``--unset`` there (and the call in
``WS/calls.txt``), prints ``{task: {"status", "settings": [{key, value, source, reason}]}}``
with ``--json``, and refuses (exit 2, one stderr line) an unknown task, a change to a refined
task with ``--task``, an ``--unset`` of a key that is not overridden, and any ``--set`` of the
key named by ``$FAKE_CLI_PLAN_REFUSE``; ``$FAKE_CLI_PLAN_DELAY_S`` makes a change take longer.
``status --json`` gives each task's ``dice``, ``class_dice`` and ``failed_classes`` from
``tasks/<name>/model/record.json`` as ``medseqft status`` does.

``--detach`` prints the job id and returns at once (after ``$FAKE_CLI_DETACH_DELAY_S`` seconds,
a slow start: the worker is started only then); the worker (this script again with
``--worker ID``) appends events to ``WS/jobs/ID/events.jsonl`` and keeps ``status.json``
(``pid``, ``state``, ``command``) up to date. SIGTERM (what ``cancel`` sends) stops it at
the next step with a ``cancelled`` event and exit 3; ``--resume`` continues from the last
checkpointed step in ``WS/fake_checkpoint.json``. Its events name stage ``$FAKE_CLI_STAGE``
(default ``fft``) and task ``$FAKE_CLI_TASK`` (default ``liver``).
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
    stage, task = os.environ.get("FAKE_CLI_STAGE", "fft"), os.environ.get("FAKE_CLI_TASK", "liver")
    with open(job_dir / "events.jsonl", "a", encoding="utf-8") as fh:
        emit(fh, event="start", stage=stage, task=task, message=f"refine started at step {start}")
        t0 = time.monotonic()
        for step in range(start + 1, args.steps + 1):
            if stop["flag"]:
                emit(fh, event="cancelled", stage=stage, task=task, message=f"cancelled at step {step - 1}")
                write_json(job_dir / "status.json", dict(status, state="cancelled"))
                return 3
            if args.crash_at and step == args.crash_at:
                os._exit(9)  # no final event, status still "running": a crash
            time.sleep(args.step_s)
            rate = (time.monotonic() - t0) / (step - start)
            emit(fh, event="progress", stage=stage, task=task, step=step, total=args.steps,
                 losses={"dice_ce": 1.0 / step}, eta_s=rate * (args.steps - step),
                 message="checkpoint saved" if step % 5 == 0 else None)
            write_json(ckpt, {"step": step})
        emit(fh, event="done", stage=stage, task=task, message="refine finished")
    write_json(job_dir / "status.json", dict(status, state="done"))
    return 0


def parse_value(raw):
    """VALUE of KEY=VALUE as medseqft reads it: JSON, else comma-separated numbers, else text."""
    raw = raw.strip()
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if "," in raw:
        try:
            return [json.loads(x) for x in raw.split(",")]
        except ValueError:
            pass
    return raw


def fail(command, message):
    sys.stderr.write(f"medseqft {command}: error: {message}\n")
    return 2


def plan_rows(manifest, rec):
    plan = rec.get("plan") or {}
    layers = [("plan", plan.get("values") or {}), ("workspace override", manifest.get("overrides") or {}),
              ("task override", rec.get("overrides") or {})]
    rows = []
    for key in sorted(set().union(*[set(values) for _, values in layers])):
        source, value = [(s, values[key]) for s, values in layers if key in values][-1]
        reason = (plan.get("reasons") or {}).get(key, "") if source == "plan" else "set by the user"
        rows.append({"key": key, "value": value, "source": source, "reason": reason})
    return rows


def plan(args, ws):
    manifest = json.loads((ws / "workspace.json").read_text())
    tasks = manifest.get("tasks") or []
    if args.task and args.task not in tasks:
        return fail("plan", f"--task: unknown task {args.task!r} in {ws} (tasks: {', '.join(tasks)})")
    records = {n: json.loads((ws / "tasks" / n / "task.json").read_text()) for n in tasks}
    if args.assign or args.unset:
        time.sleep(float(os.environ.get("FAKE_CLI_PLAN_DELAY_S", "0")))
        values = dict((a.split("=", 1)[0].strip(), parse_value(a.split("=", 1)[1])) for a in args.assign)
        refused = os.environ.get("FAKE_CLI_PLAN_REFUSE")
        if refused in values:
            return fail("plan", f"{refused}: must be <= 16, got {values[refused]}")
        if args.task and records[args.task].get("status") == "done":
            return fail("plan", f"--task: {args.task!r} is already refined; its settings are fixed")
        owner = records[args.task] if args.task else manifest
        scope = dict(owner.get("overrides") or {})
        for key in args.unset:
            if key not in scope:
                return fail("plan", f"--unset: {key!r} is not overridden {'for ' + args.task if args.task else 'in the workspace'}")
            del scope[key]
        scope.update(values)
        owner["overrides"] = scope
        target = ws / "tasks" / args.task / "task.json" if args.task else ws / "workspace.json"
        write_json(target, owner)
        with open(ws / "calls.txt", "a") as fh:
            fh.write(" ".join(["plan"] + sys.argv[3:]) + "\n")
    names = [args.task] if args.task else tasks
    doc = {n: {"status": records[n].get("status"), "settings": plan_rows(manifest, records[n])} for n in names}
    print(json.dumps(doc, indent=1) if args.json else "\n".join(doc))
    return 0


def status(ws):
    manifest = json.loads((ws / "workspace.json").read_text())
    tasks = []
    for name in manifest.get("tasks") or []:
        rec = json.loads((ws / "tasks" / name / "task.json").read_text())
        entry = {"name": name, "status": rec.get("status"), "labels": rec.get("labels")}
        record = ws / "tasks" / name / "model" / "record.json"
        if rec.get("status") == "done" and record.is_file():
            model = json.loads(record.read_text())
            check = (model.get("validation") or {}).get("M_t") or {}
            entry.update({"dice": check.get("dice"), "class_dice": check.get("classes"),
                          "failed_classes": model.get("failed_classes", [])})
        tasks.append(entry)
    print(json.dumps({"root": str(ws), "tasks": tasks, "jobs": []}, indent=2))
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
    p.add_argument("--task")
    p.add_argument("--set", dest="assign", action="append", default=[])
    p.add_argument("--unset", action="append", default=[])
    p.add_argument("--json", action="store_true")
    args, _ = p.parse_known_args()  # the panels pass --device, --lora-rank, ... as the real CLI takes them
    ws = Path(args.ws)
    if args.command == "bad":
        sys.stderr.write(f"medseqft bad: error: {ws}: no workspace.json here\n")
        return 2
    if args.command == "plan":
        return plan(args, ws)
    if args.command == "status":
        return status(ws)
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
        time.sleep(float(os.environ.get("FAKE_CLI_DETACH_DELAY_S", "0")))
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
