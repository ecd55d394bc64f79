"""A tiny but real JOB command for the job machinery's tests (not part of the product).

Run as ``python Testing/jobs/fake_job.py fakejob WS [--tasks N] [--steps N] [--sleep S] ...``:
it registers itself as the subcommand ``fakejob`` of the real ``medseqft`` command line and
calls ``MedSeqFTLib.cli.main``, so ``--detach``, events, status, cancel and exit codes go
through the product's code. Its "training" is a hash chain per task, checkpointed atomically
after every step, so a resumed run must produce byte-identical task files.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HELP = "test job: hash-chain 'training' with checkpoints, progress and cancel points"
JOB = True
JOB_LAUNCHER = (sys.executable, str(Path(__file__).resolve()))


def add_arguments(p):
    p.add_argument("workspace", type=Path)
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--sleep", type=float, default=0.02)
    p.add_argument("--ignore-cancel", action="store_true", help="never call check_cancel (tests SIGKILL escalation)")
    p.add_argument("--fail-at", type=int, default=None, help="raise RuntimeError at this step of the first task")


def run(args, reporter) -> int:
    from MedSeqFTLib.io.atomic import atomic_write_bytes, atomic_write_json
    from MedSeqFTLib.sequence.lock import WorkspaceLock

    with WorkspaceLock(args.workspace, "fakejob"):
        reporter.plan([("fft", f"t{t}", args.steps) for t in range(1, args.tasks)])
        for t in range(args.tasks):
            folder = args.workspace / "tasks" / f"t{t}"
            model = folder / "model.bin"
            if model.exists():
                continue
            ckpt = folder / "ckpt.json"
            state = json.loads(ckpt.read_text()) if ckpt.exists() else {"step": 0, "h": f"task{t}"}
            for step in range(state["step"] + 1, args.steps + 1):
                time.sleep(args.sleep)
                if args.fail_at == step:
                    raise RuntimeError(f"planned failure at step {step}")
                state = {"step": step, "h": hashlib.sha256(f"{state['h']}:{step}".encode()).hexdigest()}
                atomic_write_json(ckpt, state)
                reporter.progress("fft", f"t{t}", step, args.steps, losses={"loss": 1.0 / step})
                if not args.ignore_cancel:
                    reporter.check_cancel()
            atomic_write_bytes(model, state["h"].encode())
            ckpt.unlink()
    return 0


if __name__ == "__main__":
    import MedSeqFTLib.cli as cli

    sys.modules["MedSeqFTLib.cli.fakejob"] = sys.modules[__name__]
    cli.COMMANDS["fakejob"] = "fakejob"
    sys.exit(cli.main())
