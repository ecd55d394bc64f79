"""The buffer manifest ``WS/tasks/<task>/buffer.json`` and its timing side file.

``buffer.json`` holds only what the seed and the inputs decide, so the same seed gives a
byte-identical file::

    {"method": "mds" | "random", "seed", "k", "runs_requested", "adaptive", "pretext",
     "cases": [{"id", "mean_loss", "std", "runs"}],      # every training case, by id
     "selected": [ids],                                    # the buffer, lowest score first
     "forward_passes",                                     # SSL loss evaluations (case-views)
     ...}                                                  # plus audit fields, see build_manifest

Wall time differs from run to run, so it goes to ``buffer_timing.json`` next to it
(``{"wall_s", "forward_passes", "batched_calls", "device"}``). Losses are rounded to
``LOSS_DIGITS`` significant digits so last-bit float noise cannot change the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..io.atomic import atomic_write_json, read_json

__all__ = ["LOSS_DIGITS", "build_manifest", "write_manifest", "read_manifest", "manifest_path", "timing_path"]

LOSS_DIGITS = 7
_REQUIRED = ("method", "seed", "k", "runs_requested", "adaptive", "pretext", "cases", "selected", "forward_passes")


def _round(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    return float(f"{float(value):.{LOSS_DIGITS}g}")


def manifest_path(task_dir: str | Path) -> Path:
    return Path(task_dir) / "buffer.json"


def timing_path(task_dir: str | Path) -> Path:
    return Path(task_dir) / "buffer_timing.json"


def build_manifest(*, task: str, method: str, seed: int, k: int, runs_requested: int, adaptive: bool,
                   pretext: Optional[str], case_ids: list, means: Optional[list], stds: Optional[list],
                   counts: Optional[list], selected: list, forward_passes: int, extra: Optional[dict] = None) -> dict:
    """Assemble the manifest dict (``means``/``stds``/``counts`` are ``None`` for random).

    ``cases`` is listed in ``case_ids`` order; ``selected`` as given (MDS: lowest mean loss
    first, ties by id; random: the drawing order).
    """
    cases = []
    for i, cid in enumerate(case_ids):
        cases.append({
            "id": cid,
            "mean_loss": None if means is None else _round(means[i]),
            "std": None if stds is None else _round(stds[i]),
            "runs": 0 if counts is None else int(counts[i]),
        })
    manifest = {
        "task": task,
        "method": method,
        "seed": int(seed),
        "k": int(k),
        "runs_requested": int(runs_requested),
        "adaptive": bool(adaptive),
        "pretext": pretext,
        "cases": cases,
        "selected": list(selected),
        "forward_passes": int(forward_passes),
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_manifest(task_dir: str | Path, manifest: dict, timing: dict) -> Path:
    """Write ``buffer.json`` then ``buffer_timing.json`` atomically; returns the manifest path."""
    path = atomic_write_json(manifest_path(task_dir), manifest)
    atomic_write_json(timing_path(task_dir), timing)
    return path


def read_manifest(task_dir: str | Path) -> dict:
    """Read and check ``buffer.json``.

    Raises:
        InputError: missing, malformed, or a required key is absent.
    """
    path = manifest_path(task_dir)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "malformed buffer manifest: expected a JSON object")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise InputError(path, f"malformed buffer manifest: missing {missing}")
    return data
