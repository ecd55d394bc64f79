"""``medseqft evaluate``: Dice/HD95 of the workspace's models (with the forgetting matrix), or of
external predictions against labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_device_argument

HELP = "Dice/HD95 per task and class + forgetting matrix; or --pred DIR --labels DIR for external predictions"
DESCRIPTION = (HELP + ". Workspace mode writes WS/metrics/metrics.json, forgetting.json and forgetting.csv. "
               "Folder mode matches files by case name (file name without its image suffix) and fails (exit 2) "
               "on unmatched files or grids that differ.")
JOB = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path, nargs="?", help="the workspace folder (omit with --pred/--labels)")
    p.add_argument("--task", default=None, help="evaluate only this task's model (its own test split and every earlier task)")
    add_device_argument(p)
    p.add_argument("--pred", type=Path, default=None, help="folder of predicted label volumes")
    p.add_argument("--labels", type=Path, default=None, help="folder of reference label volumes (with --pred)")
    p.add_argument("--classes", type=Path, default=None,
                   help="JSON {label name: value} for --pred mode (default: a *.labels.json sidecar in --pred)")
    p.add_argument("--out", type=Path, default=None, help="--pred mode: also write the results as JSON here")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _print_folder_results(res: dict) -> None:
    names = list(res["classes_used"])
    fg = [n for n in names if res["classes_used"][n] != 0]
    print(f"{'case':<24}" + "".join(f"{'Dice ' + n:>16}{'HD95 ' + n:>16}" for n in fg))
    for case, r in res["cases"].items():
        print(f"{case:<24}" + "".join(f"{100 * r['classes'][n]['dice']:>16.1f}{r['classes'][n]['hd95']:>16.2f}" for n in fg))
    print(f"mean over {res['n_cases']} case(s): Dice {100 * res['dice']:.1f} %, HD95 {res['hd95']:.2f} mm")


def run(args, reporter) -> int:
    import json

    from ..errors import InputError

    if args.pred is not None or args.labels is not None:
        if args.pred is None or args.labels is None:
            raise InputError("--pred/--labels", "give both folders")
        if args.workspace is not None or args.task is not None:
            raise InputError("--pred", "folder mode takes no workspace or --task")
        from ..evaluation.evaluate import evaluate_folders
        from ..io.atomic import atomic_write_json

        res = evaluate_folders(args.pred, args.labels, labels_json=args.classes, reporter=reporter)
        if args.out is not None:
            atomic_write_json(args.out, res)
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            _print_folder_results(res)
        return 0
    if args.workspace is None:
        raise InputError("workspace", "give a workspace, or --pred DIR --labels DIR")
    from ..evaluation.evaluate import evaluate_workspace
    from ..evaluation.forgetting import format_table
    from ..sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    doc = evaluate_workspace(ws, task=args.task, reporter=reporter, device=args.device)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(doc, "dice"))
        print()
        print(format_table(doc, "hd95"))
        print(f"\nwritten: {ws.metrics_dir / 'metrics.json'}, {ws.metrics_dir / 'forgetting.json'}, "
              f"{ws.metrics_dir / 'forgetting.csv'}")
    return 0
