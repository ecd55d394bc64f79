"""An adapter task's model files: writing them after training, reading them for prediction.

``WS/tasks/<name>/model/adapter.safetensors`` holds only the tensors the task trained (names as
in ``surgery``); ``record.json`` (written last) holds the method, the support cases and the base
(files + sha256) the tensors belong to.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["save_adapter_model", "load_adapter_model"]


def save_adapter_model(task_dir, tensors: dict, record: dict, metadata: dict) -> dict:
    """Write ``adapter.safetensors`` then ``record.json`` (each atomically); returns the record as written."""
    import time

    from ..io.atomic import atomic_write_json
    from ..models.checkpoint import save_safetensors
    from ..sequence.task_model import RECORD_FILE, file_sha256, model_dir
    from .base import ADAPTER_FILE

    folder = model_dir(task_dir)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(folder / ADAPTER_FILE, tensors, {**metadata, "kind": "task_adapter"})
    record = dict(record)
    record["lineage"] = {**record.get("lineage", {}), "adapter_sha256": file_sha256(folder / ADAPTER_FILE)}
    record.setdefault("finished", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(folder / RECORD_FILE, record)
    return record


def load_adapter_model(ws, name: str):
    """The ``SegNet`` of finished adapter task ``name`` (eval mode, CPU): its base plus its own tensors.

    Raises:
        InputError: a base file that is missing or changed, or an adapter file that does not fit.
    """
    from ..config import WorkspaceConfig
    from ..errors import InputError
    from ..inference.loader import model_dir, read_record
    from ..models.checkpoint import load_safetensors
    from .base import ADAPTER_FILE
    from .config import TaskAdapter
    from .refine import build_task_net
    from .surgery import load_owned

    record = read_record(ws, name)
    path = model_dir(ws, name) / "record.json"
    if not record.get("base") or not record.get("adapter"):
        raise InputError(path, "adapter task record without 'base' or 'adapter'")
    cfg = WorkspaceConfig.from_dict(record["config"], where=f"{path}:config")
    task_adapter = TaskAdapter.from_dict(record["adapter"], where=path)
    net = build_task_net(ws, name, cfg, task_adapter, record["base"])
    tensors, _ = load_safetensors(Path(model_dir(ws, name)) / ADAPTER_FILE)
    load_owned(net, tensors, model_dir(ws, name) / ADAPTER_FILE)
    return net.eval()
