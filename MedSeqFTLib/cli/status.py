"""``medseqft status WS [--json]``: the sequence, each task's cases, labels, split and status,
and the workspace's jobs (running ones with progress and ETA; finished, failed, cancelled and
died ones with their outcome).

A job whose ``status.json`` still says ``running`` but whose process is gone (SIGKILL, crash,
reboot) or whose pid now belongs to another process is shown as ``died``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show the workspace: foundation, tasks (cases, labels, split, status) and jobs (progress, ETA)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workspace", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all-jobs", action="store_true", help="list every job (default: running ones and the last 5)")

RECENT_JOBS = 5


def _fmt_s(seconds) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def job_summary(record: dict) -> dict:
    """The fields of a job that ``status`` shows (also its ``--json`` form)."""
    keep = ("id", "command", "argv", "pid", "host", "started", "ended", "exit_code", "error", "progress", "folder")
    out = {k: record.get(k) for k in keep}
    out["state"] = record.get("effective_state", record.get("state"))
    return out


def select_jobs(jobs: list, show_all: bool) -> list:
    if show_all:
        return jobs
    active = [j for j in jobs if j["state"] in ("starting", "running")]
    recent = [j for j in jobs if j not in active][-RECENT_JOBS:]
    return sorted(active + recent, key=lambda j: (j.get("started") or 0, j.get("id") or ""))


def format_job(j: dict) -> str:
    import time

    head = f"  {j['id']} {j.get('command') or '?'} [{j['state']}]"
    prog = j.get("progress") or {}
    if j["state"] in ("starting", "running"):
        if prog:
            where = f"{prog.get('stage')}" + (f"[{prog.get('task')}]" if prog.get("task") else "")
            head += f" {where} {prog.get('step')}/{prog.get('total')}, eta {_fmt_s(prog.get('eta_s'))}"
        if j.get("started"):
            head += f", running {_fmt_s(time.time() - j['started'])}"
        return head + f" (pid {j.get('pid')} on {j.get('host')})"
    if j["state"] == "died":
        last = f" after {prog.get('stage')}[{prog.get('task')}] {prog.get('step')}/{prog.get('total')}" if prog else ""
        return head + f": process {j.get('pid')} is gone{last}; rerun the command with --resume"
    if j.get("started") and j.get("ended"):
        head += f" in {_fmt_s(j['ended'] - j['started'])}"
    if j.get("exit_code") not in (None, 0):
        head += f", exit {j['exit_code']}"
    if j["state"] == "failed" and j.get("error"):
        head += f": {j['error']}"
    return head


def _base_of(tasks: list, index: int) -> str:
    """The shared model an adapter task at ``index`` sits on: the latest kg_rft task before it, or M0."""
    for i in range(index - 1, -1, -1):
        if tasks[i].get("mode", "kg_rft") != "adapter":
            return f"M{i + 1}"
    return "M0"


def format_summary(s: dict) -> str:
    lines = [f"workspace {s['root']} (schema {s['schema_version']})",
             f"foundation: {s['foundation'].get('source')} [{s['arch']['name']}, feature size {s['arch']['feature_size']}]"]
    done = [(i, t) for i, t in enumerate(s["tasks"]) if t.get("status") == "done"]
    chain = " -> ".join(["M0"] + [f"M{i + 1}({t['name']})" for i, t in done if t.get("mode", "kg_rft") != "adapter"])
    lines.append(f"sequence: {chain}")
    branches = [f"A{i + 1}({t['name']}: {(t.get('adapter') or {}).get('method')} on {_base_of(s['tasks'], i)})"
                for i, t in done if t.get("mode") == "adapter"]
    if branches:
        lines.append(f"adapter tasks (frozen base + own modules): {', '.join(branches)}")
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
        if t.get("adapter"):
            ad = t["adapter"]
            lines.append(f"     adapter task on {_base_of(s['tasks'], i - 1)} (frozen): {ad['method']}"
                         + (f", {ad['shots']} shot(s)" if ad.get("shots") else ", every training case")
                         + (", transductive" if ad.get("transductive") else ""))
        if t.get("settings"):
            st = t["settings"]
            lines.append(f"     spacing {st['spacing']} mm, patch {st['patch_size']}, {st['normalization']}, "
                         f"{st.get('stage', 'FFT')} {st['iterations']} steps at lr {st['lr']:g} ({st['schedule']}), "
                         f"augmentation {'on' if st['augment'] else 'off'}"
                         + (f"; overrides: {', '.join(f'{k}={v}' for k, v in st['overrides'].items())}"
                            if st["overrides"] else ""))
        if t.get("dice") is not None:
            per_class = ", ".join(f"{c} {d:.1f}" for c, d in (t.get("class_dice") or {}).items())
            lines.append(f"     Dice right after training {t['dice']:.1f} % ({per_class})")
        for c in t.get("failed_classes") or []:
            lines.append(f"     FAILED CLASS: {c} never predicted on the test cases")
    jobs = s.get("jobs", [])
    lines.append("jobs: none" if not jobs else "jobs:")
    lines.extend(format_job(j) for j in jobs)
    return "\n".join(lines)


def run(args, reporter) -> int:
    from ..jobs.job_folder import list_jobs
    from ..sequence.workspace import Workspace

    ws = Workspace.open(args.workspace)
    s = ws.summary()
    jobs = [job_summary(r) for r in list_jobs(ws.jobs_dir)]
    s["jobs"] = select_jobs(jobs, getattr(args, "all_jobs", False))
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0
