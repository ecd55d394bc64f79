"""Fingerprint and plan of a workspace task: computed at ``add-task``, redone by ``medseqft plan``.

The fingerprint goes to ``tasks/<name>/fingerprint.json`` (it lists every case); the plan into
``task.json`` under ``plan`` (values, reasons, device), next to the user's ``overrides``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from ..errors import InputError

__all__ = ["FINGERPRINT_FILE", "fingerprint_task", "plan_task", "foundation_metadata"]

FINGERPRINT_FILE = "fingerprint.json"


def foundation_metadata(ws) -> dict:
    """M0's metadata (its pre-training ``preprocess`` among others); ``{}`` without a foundation file."""
    from ..models.checkpoint import load_safetensors

    if not ws.foundation_path.is_file():
        return {}
    return load_safetensors(ws.foundation_path)[1] or {}


def fingerprint_task(record: dict, reporter=None, name: str = "") -> dict:
    """``plan.fingerprint.compute_fingerprint`` of a task record's labelled cases (progress as ``fingerprint``),
    with the record's channel modalities (``data.modality.task_channel_modalities``)."""
    from ..data.modality import task_channel_modalities
    from .fingerprint import compute_fingerprint

    progress = None
    if reporter is not None:
        progress = lambda i, n: reporter.progress("fingerprint", name or record.get("name", ""), i, n)  # noqa: E731
    cases = [c for c in record["cases"] if c.get("label")]
    return compute_fingerprint(cases, record["modality"], record["labels"], progress=progress,
                               channel_modalities=task_channel_modalities(record))


def plan_task(ws, record: dict, fingerprint: dict, device: Optional[str] = "auto") -> dict:
    """The plan of a task (``plan.planner.make_plan``) for the workspace's backbone and ``device``."""
    from ..devices import resolve_device
    from .planner import make_plan

    dev = resolve_device(device or "auto")
    # the backbone is the same for every task: reuse a measurement another task's plan made
    known = None
    for other in ws.task_names():
        try:
            known = (ws.task(other).get("plan") or {}).get("bytes_per_voxel") or known
        except InputError:  # a damaged task record just means measuring again
            continue
    plan = make_plan(fingerprint, ws.config, dev, foundation_metadata(ws), bytes_per_voxel=known,
                     channel_names=record.get("channel_names"))
    plan["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return plan


def fingerprint_path(ws, name: str) -> Path:
    return ws.task_dir(name) / FINGERPRINT_FILE
