"""Read-only views of a workspace for the panels (the library writes these files).

Layout and fields: docs/CONTRACTS.md. Every reader is tolerant: a missing or half-written
file gives an empty result instead of an exception, because the panels refresh while a job
is writing. No MedSeqFTLib import (the GUI talks to the library through files and the CLI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from .choices import BLACK_BOX_METHODS

__all__ = [
    "last_line",
    "json_reply",
    "read_json_or",
    "is_workspace",
    "read_workspace",
    "task_names",
    "read_task",
    "task_rows",
    "task_mode",
    "adapter_settings",
    "mode_text",
    "model_files",
    "model_complete",
    "is_finished",
    "finished_tasks",
    "is_black_box_adapter",
    "adapter_branches",
    "read_buffer",
    "buffer_rows",
    "model_sequence",
    "read_metrics",
    "latest_job",
    "read_forgetting",
    "metrics_rows",
    "forgetting_table",
    "test_case_predictions",
    "hyper_parameters",
]


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (the CLI's one-line error is the last stderr line)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def json_reply(code: int, out: str):
    """The JSON object a successful ``--json`` command printed, else ``None``."""
    try:
        doc = json.loads(out) if code == 0 else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def read_json_or(path: Path, default=None):
    """The JSON content of ``path``, or ``default`` when missing, unreadable or malformed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def is_workspace(folder: str | Path) -> bool:
    return (Path(folder) / "workspace.json").is_file()


def read_workspace(ws: str | Path) -> dict:
    data = read_json_or(Path(ws) / "workspace.json", {})
    return data if isinstance(data, dict) else {}


def task_names(ws: str | Path) -> List[str]:
    tasks = read_workspace(ws).get("tasks", [])
    return [str(t) for t in tasks] if isinstance(tasks, list) else []


def read_task(ws: str | Path, name: str) -> dict:
    data = read_json_or(Path(ws) / "tasks" / name / "task.json", {})
    return data if isinstance(data, dict) else {}


def task_mode(rec: dict) -> str:
    """``"kg_rft"`` (also for a ``task.json`` written before modes existed) or ``"adapter"``."""
    return str(rec.get("mode") or "kg_rft")


def adapter_settings(rec: dict) -> dict:
    """The ``"adapter"`` object of an adapter task's ``task.json`` (``{}`` for a kg_rft task)."""
    ad = rec.get("adapter") if task_mode(rec) == "adapter" else None
    return ad if isinstance(ad, dict) else {}


def mode_text(rec: dict) -> str:
    """The Tasks table's mode cell: ``K&G RFT``, or ``adapter linear_probe, 5 shots, transductive``."""
    if task_mode(rec) != "adapter":
        return "K&G RFT"
    ad = adapter_settings(rec)
    shots = ad.get("shots")
    return (f"adapter {ad.get('method') or '?'}, " + (f"{shots} shot{'s' if shots != 1 else ''}" if shots else "all cases")
            + (", transductive" if ad.get("transductive") else ""))


def task_rows(ws: str | Path) -> List[dict]:
    """One row per task: name, cases (train/test), labels, status, mode (``mode_text``)."""
    rows = []
    for name in task_names(ws):
        rec = read_task(ws, name)
        split = rec.get("split") or {}
        labels = {k: v for k, v in (rec.get("labels") or {}).items() if v}
        rows.append({
            "name": name,
            "cases": len(rec.get("cases") or []),
            "train": len(split.get("train") or []),
            "test": len(split.get("test") or []),
            "labels": ", ".join(labels),
            "status": rec.get("status", "damaged" if not rec else "?"),
            "mode": mode_text(rec) if rec else "?",
        })
    return rows


def model_files(rec: dict) -> tuple:
    """The files a finished task's ``model/`` folder holds (``record.json`` last): an adapter task
    keeps only its own modules. The rule of ``MedSeqFTLib.adapters.base.model_files``."""
    if task_mode(rec) == "adapter":
        return ("adapter.safetensors", "record.json")
    return ("encoder.safetensors", "decoder.safetensors", "record.json")


def model_complete(ws: str | Path, name: str, rec: Optional[dict] = None) -> bool:
    """Whether every model file of task ``name`` is there (whatever its status says)."""
    rec = read_task(ws, name) if rec is None else rec
    folder = Path(ws) / "tasks" / name / "model"
    return bool(rec) and all((folder / f).is_file() for f in model_files(rec))


def is_finished(ws: str | Path, name: str, rec: Optional[dict] = None) -> bool:
    """Status ``done`` and a complete model: what ``medseqft predict`` accepts (the library's
    ``inference.loader.is_finished``)."""
    rec = read_task(ws, name) if rec is None else rec
    return rec.get("status") == "done" and model_complete(ws, name, rec)


def finished_tasks(ws: str | Path) -> List[str]:
    """The tasks whose model can segment a volume, in sequence order."""
    return [n for n in task_names(ws) if is_finished(ws, n)]


def is_black_box_adapter(ws: str | Path, name: str) -> bool:
    """An adapter task whose method sees only the frozen base's features (``predict --transductive``)."""
    rec = read_task(ws, name)
    return task_mode(rec) == "adapter" and adapter_settings(rec).get("method") in BLACK_BOX_METHODS


def read_buffer(ws: str | Path, name: str) -> dict:
    data = read_json_or(Path(ws) / "tasks" / name / "buffer.json", {})
    return data if isinstance(data, dict) else {}


def buffer_rows(ws: str | Path, name: str) -> List[dict]:
    """The task's training cases with their MDS score (mean SSL loss) and buffer rank.

    Cases without a score yet (no ``buffer.json``) are listed with ``score=None`` so the
    table can show the cases before selection runs. Rows are sorted by score (lowest first,
    i.e. most like the pre-training data), unscored cases last.
    """
    rec = read_task(ws, name)
    by_id = {c.get("id"): c for c in (rec.get("cases") or []) if isinstance(c, dict)}
    manifest = read_buffer(ws, name)
    rank = {cid: i + 1 for i, cid in enumerate(manifest.get("selected") or [])}
    scored = {c.get("id"): c for c in (manifest.get("cases") or []) if isinstance(c, dict)}
    train = (rec.get("split") or {}).get("train") or list(by_id)
    rows = []
    for cid in train:
        s = scored.get(cid, {})
        case = by_id.get(cid, {})
        images = case.get("images") or []
        rows.append({"id": cid, "score": s.get("mean_loss"), "std": s.get("std"), "runs": s.get("runs"),
                     "rank": rank.get(cid), "image": images[0] if images else None, "label": case.get("label")})
    rows.sort(key=lambda r: (r["score"] is None, r["score"] if r["score"] is not None else 0.0, r["id"]))
    return rows


def _lineage(ws: str | Path) -> tuple:
    """``(chain, branches)`` of ``model_sequence`` and ``adapter_branches``, named as ``medseqft
    status`` names them: task number n gives ``Mn`` (kg_rft) or ``An`` (adapter task)."""
    chain, branches, base = ["M0"], [], "M0"
    for n, name in enumerate(task_names(ws), start=1):
        rec = read_task(ws, name)
        adapter = task_mode(rec) == "adapter"
        tag = f"A{n}" if adapter else f"M{n}"
        target = branches if adapter else chain
        if rec.get("status") == "done" or (rec and model_complete(ws, name, rec)):
            method = adapter_settings(rec).get("method") or "?"
            target.append(f"{tag} ({name}: {method} on {base})" if adapter else f"{tag} ({name})")
            base = base if adapter else tag
        elif rec.get("status") == "training":
            target.append(f"{tag} ({name}, training)")
            break
        else:
            break
    return chain, branches


def model_sequence(ws: str | Path) -> List[str]:
    """``["M0", "M1 (liver)", ...]``: the foundation model then the shared model after each
    finished kg_rft task (adapter tasks leave it as it is; see ``adapter_branches``)."""
    return _lineage(ws)[0]


def adapter_branches(ws: str | Path) -> List[str]:
    """``["A2 (spleen: linear_probe on M1)", ...]``: each finished adapter task with the frozen
    shared model it sits on (the latest kg_rft model before it, or M0)."""
    return _lineage(ws)[1]


def read_metrics(ws: str | Path) -> dict:
    data = read_json_or(Path(ws) / "metrics" / "metrics.json", {})
    return data if isinstance(data, dict) else {}


def latest_job(ws: str | Path, command: Optional[str] = None) -> Optional[Path]:
    """The newest job folder (optionally of ``command``), finished or not."""
    jobs = Path(ws) / "jobs"
    if not jobs.is_dir():
        return None
    def age(folder: Path) -> float:
        status = folder / "status.json"
        return (status if status.exists() else folder).stat().st_mtime

    folders = sorted((p for p in jobs.iterdir() if p.is_dir()), key=lambda p: (age(p), p.name), reverse=True)
    for folder in folders:
        if command is None:
            return folder
        status = read_json_or(folder / "status.json", {}) or {}
        if status.get("command") == command or f"-{command}-" in folder.name:
            return folder
    return None


def read_forgetting(ws: str | Path) -> dict:
    data = read_json_or(Path(ws) / "metrics" / "forgetting.json", {})
    return data if isinstance(data, dict) else {}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}"


def _mm(v) -> str:
    return "-" if v is None else f"{float(v):.2f}"


def metrics_rows(ws: str | Path) -> List[tuple]:
    """``(task, Dice %, HD95 mm, test cases)`` per evaluated task (its own model M_task)."""
    tasks = read_metrics(ws).get("tasks") or {}
    return [(name, _pct(m.get("dice")), _mm(m.get("hd95")), m.get("n_cases", ""))
            for name, m in tasks.items() if isinstance(m, dict)]


def forgetting_table(ws: str | Path) -> tuple:
    """``(headers, rows)`` of the Dice forgetting matrix: row = model M[t], column = task j."""
    doc = read_forgetting(ws)
    names = doc.get("tasks") or []
    if not names:
        return [], []
    headers = ["model"] + list(names) + ["average"]
    rows = []
    for i, t in enumerate(names):
        cells = (doc.get("dice") or [[]])[i] if i < len(doc.get("dice") or []) else []
        avg = (doc.get("average_dice") or [None] * len(names))[i]
        rows.append([f"M[{t}]"] + [_pct(v) for v in cells] + [_pct(avg)])
    if doc.get("bwt_dice") is not None:
        rows.append(["backward transfer"] + [""] * len(names) + [_pct(doc["bwt_dice"])])
    return headers, rows


def test_case_predictions(ws: str | Path, name: str) -> List[dict]:
    """Test cases of task ``name`` with the prediction ``evaluate`` saved for each (if any)."""
    rec = read_task(ws, name)
    by_id = {c.get("id"): c for c in (rec.get("cases") or []) if isinstance(c, dict)}
    pred_dir = Path(ws) / "metrics" / "predictions" / name
    out = []
    for cid in (rec.get("split") or {}).get("test") or []:
        case = by_id.get(cid, {})
        images = case.get("images") or []
        pred = pred_dir / f"{cid}.nii.gz"
        out.append({"id": cid, "image": images[0] if images else None, "label": case.get("label"),
                    "prediction": str(pred) if pred.is_file() else None})
    return out


def hyper_parameters(ws: str | Path) -> dict:
    """The refinement settings the panel shows: ``iterations`` (task fine-tuning), ``lora_rank``,
    ``k`` (buffer size, ``None`` = 20 %): the workspace-wide override (``workspace.json``
    ``overrides``, written by ``medseqft plan --set``) where there is one, else ``config``."""
    manifest = read_workspace(ws)
    cfg = manifest.get("config") or {}
    ret = cfg.get("retention") or {}
    over = manifest.get("overrides") if isinstance(manifest.get("overrides"), dict) else {}
    base = {"retention.fft.iterations": (ret.get("fft") or {}).get("iterations"), "retention.lora_rank": ret.get("lora_rank"),
            "selection.k": (cfg.get("selection") or {}).get("k")}
    value = {key: over.get(key, v) for key, v in base.items()}
    return {"iterations": value["retention.fft.iterations"], "lora_rank": value["retention.lora_rank"],
            "k": value["selection.k"]}
