"""``medseqft plan WS [--task NAME] [--set KEY=VALUE ...] [--unset KEY ...] [--replan] [--json]``.

Without changes it prints, per task, every planned or overridden setting with its value, where
it comes from (plan, workspace override, task override) and why. ``--set``/``--unset`` record
overrides (validated before anything is written): with ``--task`` for that task, without it
for every task of the workspace. ``--replan`` recomputes the plans (e.g. ``--device cuda``
after moving the workspace to a GPU machine). Tasks that are refined already keep the
settings they were trained with and cannot be changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_device_argument

HELP = "show each task's plan (spacing, patch, batch, normalisation ...) with reasons; set or unset overrides"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path)
    p.add_argument("--task", default=None, help="only this task (default: every task; --set then applies to all)")
    p.add_argument("--set", dest="assign", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. preprocess.spacing=1.5,1.5,1.5 or retention.fft.iterations=2000 "
                        "or recipe.augment=false (repeatable; see --keys)")
    p.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove an override (repeatable)")
    p.add_argument("--replan", action="store_true", help="recompute the plan from the task's fingerprint")
    add_device_argument(p, purpose="the plan sizes the patch for (with --replan)")
    p.add_argument("--keys", action="store_true", help="list every settable key and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _rows(ws, name: str) -> list[dict]:
    from ..plan.overrides import flatten

    rec = ws.task(name)
    plan = rec.get("plan") or {}
    cfg = flatten(ws.task_config(name).to_dict())
    rows = []
    sources = [("plan", plan.get("values") or {}), ("workspace override", ws.manifest.get("overrides") or {}),
               ("task override", rec.get("overrides") or {})]
    keys = sorted(set().union(*[set(v) for _, v in sources]))
    reasons = plan.get("reasons") or {}
    for key in keys:
        source = [s for s, values in sources if key in values][-1]
        reason = "set by the user"
        if source == "plan":
            reason = reasons.get(key) or reasons.get("retention.*." + key.rsplit(".", 1)[-1], "")
        rows.append({"key": key, "value": cfg.get(key), "source": source, "reason": reason})
    for key in ("retention.fft.iterations", "retention.kd_fft.iterations", "retention.lora_kd.iterations"):
        if key not in keys:
            rows.append({"key": key, "value": cfg.get(key), "source": "workspace",
                         "reason": reasons.get("retention.*.iterations", "")})
    return rows


def run(args, reporter) -> int:
    from ..errors import InputError
    from ..plan.overrides import known_keys, update_overrides
    from ..sequence.workspace import Workspace

    if args.keys:
        print("\n".join(known_keys()))
        return 0
    ws = Workspace.open(args.workspace)
    names = [args.task] if args.task else ws.task_names()
    for n in names:
        ws.task(n)  # unknown task -> InputError
    changing = bool(args.assign or args.unset or args.replan)
    if changing:
        with ws.lock("plan"):
            ws = Workspace.open(args.workspace)
            update_overrides(ws, args.task, args.assign, args.unset, replan=args.replan, device=args.device,
                             reporter=reporter)
            ws = Workspace.open(args.workspace)
    if not names:
        if changing:  # workspace-wide overrides before the first task: recorded, nothing to plan yet
            print(json.dumps({"workspace_overrides": ws.manifest.get("overrides") or {}}) if args.json else
                  "workspace overrides: " + (", ".join(f"{k}={v}" for k, v in (ws.manifest.get("overrides") or {}).items())
                                             or "none"))
            return 0
        raise InputError(ws.root, "the workspace has no tasks yet; add one with 'medseqft add-task'")
    table = {n: _rows(ws, n) for n in names}
    if args.json:
        print(json.dumps({n: {"status": ws.task(n)["status"], "settings": rows} for n, rows in table.items()}, indent=1))
        return 0
    for n, rows in table.items():
        plan = ws.task(n).get("plan") or {}
        print(f"{n} ({ws.task(n)['status']}; planned for {plan.get('device', '?')})")
        for r in rows:
            value = json.dumps(r["value"]) if not isinstance(r["value"], str) else r["value"]
            print(f"  {r['key']:<34} {value:<28} [{r['source']}] {r['reason']}")
    return 0
