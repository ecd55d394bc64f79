"""Read a finished task's model M_t = E_t + task decoder/head from the workspace.

Layout (written by the refinement stage, see docs/CONTRACTS.md):
``WS/tasks/<name>/model/encoder.safetensors`` (E_t, the encoder's state dict),
``decoder.safetensors`` (``decoder.*`` and ``head.*``) and ``record.json``.

``load_task_model(ws, j, encoder_from=t)`` combines a later task t's encoder E_t with task
j's decoder and head: that is "M_t evaluated on task j" in the sequential setting, where
every task keeps its own decoder/head and only the shared encoder moves on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import InputError

__all__ = ["model_dir", "is_finished", "require_finished", "finished_tasks", "load_encoder_state",
           "load_foundation_encoder_state", "load_task_model", "class_values", "read_record"]

ENCODER_FILE = "encoder.safetensors"
DECODER_FILE = "decoder.safetensors"
RECORD_FILE = "record.json"


def model_dir(ws, name: str) -> Path:
    return ws.task_dir(name) / "model"


def is_finished(ws, name: str) -> bool:
    """True when the task's status is ``done`` and its model is complete (``record.json`` is written last)."""
    try:
        status = ws.task(name).get("status")
    except InputError:
        return False
    from ..adapters.base import model_files

    folder = model_dir(ws, name)
    return status == "done" and all((folder / f).is_file() for f in model_files(ws.task(name)))


def require_finished(ws, name: str) -> dict:
    """The task record of ``name``, if it has a finished model.

    Raises:
        InputError: unknown task, or a task that has not finished refining.
    """
    record = ws.task(name)  # InputError for an unknown task
    if not is_finished(ws, name):
        raise InputError("--task", f"task {name!r} has no finished model yet (status {record.get('status')!r}); "
                                   f"run 'medseqft refine {ws.root}' first")
    return record


def finished_tasks(ws) -> list[str]:
    """Finished tasks in sequence order."""
    return [n for n in ws.task_names() if is_finished(ws, n)]


def _strip(tensors: dict, prefix: str) -> dict:
    if tensors and all(k.startswith(prefix) for k in tensors):
        return {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def load_encoder_state(ws, name: str) -> dict:
    """E_t of task ``name`` as an encoder-relative state dict (CPU tensors).

    Raises:
        InputError: missing or unreadable file.
    """
    from ..models.checkpoint import load_safetensors

    tensors, _ = load_safetensors(model_dir(ws, name) / ENCODER_FILE)
    return _strip(tensors, "encoder.")


def load_foundation_encoder_state(ws) -> dict:
    """M0's encoder (``WS/models/foundation.safetensors``, keys ``encoder.*``) as an encoder-relative state dict.

    Raises:
        InputError: missing or unreadable file.
    """
    from ..models.checkpoint import load_safetensors

    tensors, _ = load_safetensors(ws.foundation_path)
    return {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}


def read_record(ws, name: str) -> dict:
    """The task's ``model/record.json`` (``{}`` if absent)."""
    from ..io.atomic import read_json

    path = model_dir(ws, name) / RECORD_FILE
    return read_json(path) if path.is_file() else {}


def class_values(labels: dict) -> list[int]:
    """Label value of each network class index: the task's label values in ascending order.

    The training data map label values to class indices in this order (0 = background), so
    index i of the head's output is label value ``class_values(labels)[i]``.
    """
    return sorted(int(v) for v in labels.values())


def _load_into(module, state: dict, where: Path) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(where, f"does not fit the workspace's model (missing {list(missing)[:3]}, "
                                f"unexpected {list(unexpected)[:3]}); was it written for another backbone?")


def load_task_model(ws, name: str, encoder_from: Optional[str] = None):
    """Build the ``SegNet`` of task ``name`` (eval mode, CPU).

    Args:
        ws: the ``Workspace``.
        name: task whose decoder and head are used.
        encoder_from: task whose encoder E_t is used (default ``name``); a later task gives
            "M_t on task ``name``" for the forgetting matrix. An adapter task as ``encoder_from``
            stands for the shared model at its place (its base's encoder); an adapter task as
            ``name`` always gives its own model (its frozen base plus its modules).

    Raises:
        InputError: unknown or unfinished task(s), or model files that do not fit the
            workspace's architecture.
    """
    from ..adapters.base import is_adapter_task, shared_source
    from ..models.checkpoint import load_safetensors
    from ..models.registry import build_segnet

    require_finished(ws, name)
    if encoder_from is not None and encoder_from != name:
        require_finished(ws, encoder_from)
    if is_adapter_task(ws, name):
        from ..adapters.files import load_adapter_model

        return load_adapter_model(ws, name)  # its own frozen base, whatever came after it
    # after an adapter task the shared model is still its base's: that task's encoder
    source = shared_source(ws, encoder_from or name)
    if source is None:
        raise InputError("--task", f"{encoder_from!r} sits on M0 and comes before {name!r}: no shared encoder to combine")
    dec, _ = load_safetensors(model_dir(ws, name) / DECODER_FILE)
    if "head.weight" not in dec:
        raise InputError(model_dir(ws, name) / DECODER_FILE, "no 'head.weight' tensor")
    n_classes = int(dec["head.weight"].shape[0])
    n_labels = len(ws.labels(name))
    if n_classes != n_labels:
        raise InputError(model_dir(ws, name) / DECODER_FILE,
                         f"head has {n_classes} classes but task {name!r} has {n_labels} labels")
    model = build_segnet(ws.config.arch, n_classes)
    _load_into(model.encoder, load_encoder_state(ws, source), model_dir(ws, source) / ENCODER_FILE)
    decoder = {k[len("decoder."):]: v for k, v in dec.items() if k.startswith("decoder.")}
    head = {k[len("head."):]: v for k, v in dec.items() if k.startswith("head.")}
    _load_into(model.decoder, decoder, model_dir(ws, name) / DECODER_FILE)
    _load_into(model.head, head, model_dir(ws, name) / DECODER_FILE)
    return model.eval()
