"""``medseqft select WS``: choose the replay buffer of tasks by MDS (or at random) and show the scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

DEFAULT_FIT_STEPS = 200  # = selection.ssl_head.DEFAULT_FIT_STEPS (not imported: --help stays light)

HELP = "MDS buffer selection: score each training case with M0's SSL loss and pick the K lowest"
DESCRIPTION = (
    "Score every training case of a task with the foundation model's SSL pretext loss, averaged over "
    "stochastic runs, and write WS/tasks/<task>/buffer.json with the K lowest-loss cases. Without --task, "
    "every task that has no buffer yet is selected. Same seed -> identical buffer.json. A foundation model "
    "without its own SSL head is refused (exit 2) unless --fit-ssl-head, --random-ssl-head or --random says what to do."
)
JOB = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, help="workspace folder")
    p.add_argument("--task", default=None, help="task name (default: every task without a buffer)")
    p.add_argument("--k", type=int, default=None, help="buffer size (default: selection.k, or 20%% of the training cases)")
    p.add_argument("--runs", type=int, default=None, help="stochastic runs per case, the budget R (default: selection.runs)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--random", action="store_true", help="random buffer of the same size (the paper's ablation)")
    how.add_argument("--fit-ssl-head", type=int, nargs="?", const=DEFAULT_FIT_STEPS, default=None, metavar="STEPS",
                     help="M0 has no SSL head: fit a fresh one on the frozen M0 with each task's training cases for "
                          f"STEPS steps (default {DEFAULT_FIT_STEPS}) and score with it (recorded in buffer.json)")
    how.add_argument("--random-ssl-head", action="store_true",
                     help="M0 has no SSL head: score with an untrained, seeded head (recorded in buffer.json)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the workspace seed)")
    p.add_argument("--no-adaptive", action="store_true", help="run every case R times instead of stopping decided cases early")
    add_device_argument(p, default="cpu", purpose="for SSL scoring")


def format_table(manifest: dict) -> str:
    """The per-case table: case, mean loss, std, runs, selected (buffer rank)."""
    rank = {cid: i + 1 for i, cid in enumerate(manifest["selected"])}
    rows = [("case", "mean_loss", "std", "runs", "selected")]
    cases = manifest["cases"]
    if manifest["method"] == "mds":
        cases = sorted(cases, key=lambda c: (c["mean_loss"], c["id"]))
    for c in cases:
        rows.append((c["id"],
                     "-" if c["mean_loss"] is None else f"{c['mean_loss']:.5f}",
                     "-" if c["std"] is None else f"{c['std']:.5f}",
                     str(c["runs"]),
                     f"yes ({rank[c['id']]})" if c["id"] in rank else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    head = (f"task {manifest['task']}: {manifest['method']} buffer, k={manifest['k']} of {len(manifest['cases'])}, "
            f"seed {manifest['seed']}, {manifest['forward_passes']} SSL loss evaluations")
    if manifest.get("ssl_head"):
        h = manifest["ssl_head"]
        from ..selection.ssl_head import HEAD_WORDS

        words = HEAD_WORDS.get(h["source"], h["source"])
        head += f", {words} {h['pretext']} SSL head" + (f" ({h['steps']} steps)" if "steps" in h else "")
    return "\n".join([head] + lines)


def run(args, reporter) -> int:
    from ..errors import InputError
    from ..selection.manifest import manifest_path
    from ..selection.mds import select_task
    from ..sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    if args.k is not None and args.k < 1:
        raise InputError("--k", f"must be >= 1, got {args.k}")
    if args.runs is not None and args.runs < 1:
        raise InputError("--runs", f"must be >= 1, got {args.runs}")
    if args.fit_ssl_head is not None and args.fit_ssl_head < 1:
        raise InputError("--fit-ssl-head", f"STEPS must be >= 1, got {args.fit_ssl_head}")
    ssl_head = "fit" if args.fit_ssl_head is not None else "random" if args.random_ssl_head else None
    from ..adapters.base import is_adapter_task

    if args.task is not None:
        ws.task(args.task)  # unknown task -> InputError before anything runs
        if is_adapter_task(ws, args.task):
            raise InputError("--task", f"{args.task!r} is an adapter task: it changes no shared weight, so later tasks "
                                       "never distil on it and it has no buffer")
        names = [args.task]
    else:
        # adapter tasks keep their own modules: no later task distils on them
        names = [n for n in ws.task_names() if not manifest_path(ws.task_dir(n)).exists() and not is_adapter_task(ws, n)]
        if not names:
            print(f"every task of {ws.root} already has a buffer (use --task NAME to redo one)")
            return 0
    with ws.lock("select"):
        for name in names:
            manifest = select_task(ws, name, reporter, device=args.device, k=args.k, runs=args.runs,
                                   method="random" if args.random else None, seed=args.seed,
                                   adaptive=False if args.no_adaptive else None, ssl_head=ssl_head,
                                   fit_steps=args.fit_ssl_head)
            print(format_table(manifest))
    return 0
