"""``medseqft status WS``: the sequence, each task's cases, labels, split and status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show the workspace: foundation, tasks (cases, labels, split, status)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def format_summary(s: dict) -> str:
    lines = [f"workspace {s['root']} (schema {s['schema_version']})",
             f"foundation: {s['foundation'].get('source')} [{s['arch']['name']}, feature size {s['arch']['feature_size']}]"]
    chain = " -> ".join(["M0"] + [f"M{i + 1}({t['name']})" for i, t in enumerate(s["tasks"]) if t.get("status") == "done"])
    lines.append(f"sequence: {chain}")
    if not s["tasks"]:
        lines.append("no tasks yet: medseqft add-task WS DATASET")
    for i, t in enumerate(s["tasks"], 1):
        if t.get("status") == "damaged":
            lines.append(f"  {i}. {t['name']}: DAMAGED ({t['error']})")
            continue
        labels = ", ".join(f"{k}={v}" for k, v in t["labels"].items())
        lines.append(f"  {i}. {t['name']} [{t['status']}] {t['format']} {t['modality']}: {t['cases']} cases "
                     f"(train {t['train']} / test {t['test']}, {t['split_method']}), labels {labels}"
                     + (f", {t['warnings']} warning(s)" if t["warnings"] else ""))
    return "\n".join(lines)


def run(args, reporter) -> int:
    from ..sequence.workspace import Workspace

    s = Workspace.open(args.workspace).summary()
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0
