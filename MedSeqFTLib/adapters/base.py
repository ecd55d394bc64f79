"""Which frozen model an adapter task sits on, and its own files.

The base of an adapter task is the shared model of the sequence at the task's place: the model of
the latest ``kg_rft`` task before it (its E_t and decoder), or M0's encoder when none precedes it.
The task records the base's files with their sha256; a finished task's files are never written
again, so the adapter task predicts the same whatever is refined after it, and a base file that
changed anyway is refused rather than silently used.

``WS/tasks/<name>/model/`` of an adapter task: ``adapter.safetensors`` (only the tensors the task
trained, names as in ``surgery``) and ``record.json`` (written last; marks the model complete).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import InputError

__all__ = ["ADAPTER_FILE", "task_mode", "is_adapter_task", "base_task", "resolve_base", "load_base",
           "model_files", "shared_source"]

ADAPTER_FILE = "adapter.safetensors"


def task_mode(record: dict) -> str:
    """``"kg_rft"`` (also for tasks written before modes existed) or ``"adapter"``."""
    return str(record.get("mode") or "kg_rft")


def is_adapter_task(ws, name: str) -> bool:
    return task_mode(ws.task(name)) == "adapter"


def model_files(record: dict) -> tuple:
    """The files a finished task's ``model/`` folder holds (``record.json`` last)."""
    if task_mode(record) == "adapter":
        return (ADAPTER_FILE, "record.json")
    return ("encoder.safetensors", "decoder.safetensors", "record.json")


def base_task(ws, name: str) -> Optional[str]:
    """The latest kg_rft task before ``name`` in the sequence (``None``: the base is M0)."""
    names = ws.task_names()
    for prev in reversed(names[: names.index(name)]):
        if not is_adapter_task(ws, prev):
            return prev
    return None


def shared_source(ws, name: str) -> Optional[str]:
    """The task whose encoder is the shared model after ``name``: itself for kg_rft, else its base."""
    if not is_adapter_task(ws, name):
        return name
    from ..inference.loader import read_record

    base = (read_record(ws, name).get("base") or {})
    return base.get("task") if base else base_task(ws, name)


def resolve_base(ws, name: str) -> dict:
    """The base record of adapter task ``name``: files (relative to the workspace) and sha256.

    Raises:
        InputError: the base task has no finished model, or M0 is missing.
    """
    from ..sequence.task_model import DECODER_FILE, ENCODER_FILE, file_sha256, model_dir

    prev = base_task(ws, name)
    if prev is None:
        if not ws.foundation_path.is_file():
            raise InputError(ws.foundation_path, "foundation model missing; re-run 'medseqft init'")
        return {"task": None, "model": "M0", "encoder_file": "models/foundation.safetensors",
                "encoder_sha256": file_sha256(ws.foundation_path), "decoder_file": None, "decoder_sha256": None}
    folder = model_dir(ws.task_dir(prev))
    if not all((folder / f).is_file() for f in (ENCODER_FILE, DECODER_FILE, "record.json")):
        raise InputError(folder, f"base task {prev!r} of adapter task {name!r} has no finished model; refine it first")
    rel = Path("tasks") / prev / "model"
    return {"task": prev, "model": f"M{ws.task_names().index(prev) + 1} ({prev})",
            "encoder_file": str(rel / ENCODER_FILE), "encoder_sha256": file_sha256(folder / ENCODER_FILE),
            "decoder_file": str(rel / DECODER_FILE), "decoder_sha256": file_sha256(folder / DECODER_FILE)}


def load_base(ws, base: dict, where) -> tuple:
    """``(encoder_state, decoder_state or None)`` of a base record, after checking the files' sha256.

    Raises:
        InputError: a base file is missing, unreadable or differs from the one the task was trained on.
    """
    from ..models.checkpoint import load_safetensors
    from ..sequence.task_model import file_sha256

    states = []
    for kind in ("encoder", "decoder"):
        rel = base.get(f"{kind}_file")
        if rel is None:
            states.append(None)
            continue
        path = ws.root / rel
        if not path.is_file():
            raise InputError(path, f"base model file of {where} is missing")
        if file_sha256(path) != base.get(f"{kind}_sha256"):
            raise InputError(path, f"changed since {where} was trained on it (sha256 differs); re-add the task")
        tensors, _ = load_safetensors(path)
        prefix = f"{kind}."
        if kind == "encoder" and base.get("task") is not None:
            states.append({k[len(prefix):] if k.startswith(prefix) else k: v for k, v in tensors.items()}
                          if all(k.startswith(prefix) for k in tensors) else tensors)
        else:  # M0's file (encoder.* + ssl_head.*) and a task's decoder file (decoder.* + head.*)
            states.append({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return states[0], states[1]
