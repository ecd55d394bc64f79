"""Writing a finished task's model M_t = E_t + task decoder/head, and reading M_{t-1}'s parts.

``WS/tasks/<name>/model/``:

* ``encoder.safetensors``: E_t's state dict (keys exactly as the encoder's ``state_dict``);
* ``decoder.safetensors``: ``decoder.*`` and ``head.*``;
* ``record.json``: stages (loss curves, time, peak memory), lineage with sha256 of the files,
  parameter counts, buffer, config. Written last: its presence marks the model complete.

Reading a finished model for prediction lives in ``inference.loader``; this module only reads
what the next refinement needs (E_{t-1} and the decoder of M_{t-1}).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ..io.atomic import atomic_write_json

__all__ = ["ENCODER_FILE", "DECODER_FILE", "RECORD_FILE", "model_dir", "file_sha256", "save_task_model",
           "load_previous_parts", "count_params", "start_network"]

ENCODER_FILE = "encoder.safetensors"
DECODER_FILE = "decoder.safetensors"
RECORD_FILE = "record.json"


def model_dir(task_dir: str | Path) -> Path:
    return Path(task_dir) / "model"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def save_task_model(task_dir: str | Path, encoder, decoder, head, record: dict, metadata: dict) -> dict:
    """Write encoder, decoder+head and ``record.json`` (in that order, each atomically).

    Args:
        task_dir: ``WS/tasks/<name>``.
        encoder: E_t (plain modules, no LoRA wrappers).
        decoder, head: the task's decoder and 1x1x1 head.
        record: what ``record.json`` should hold; ``lineage`` gets the files' sha256 added and
            ``n_params`` the parameter counts.
        metadata: JSON-able metadata stored in both safetensors files (arch, task, ...).

    Returns:
        The record as written.
    """
    from ..models.checkpoint import save_safetensors

    folder = model_dir(task_dir)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(folder / ENCODER_FILE, encoder.state_dict(), {**metadata, "kind": "task_encoder"})
    tensors = {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    save_safetensors(folder / DECODER_FILE, tensors, {**metadata, "kind": "task_decoder"})
    record = dict(record)
    record["lineage"] = {**record.get("lineage", {}), "encoder_sha256": file_sha256(folder / ENCODER_FILE),
                         "decoder_sha256": file_sha256(folder / DECODER_FILE)}
    record["n_params"] = {"encoder": count_params(encoder), "decoder": count_params(decoder), "head": count_params(head),
                          **record.get("n_params", {})}
    record.setdefault("finished", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(folder / RECORD_FILE, record)
    return record


def load_previous_parts(task_dir: str | Path) -> tuple[dict, dict]:
    """E_{t-1} and the decoder of M_{t-1}, as state dicts (CPU tensors).

    Returns:
        ``(encoder_state, decoder_state)`` with module-relative keys.

    Raises:
        InputError: a missing or unreadable model file.
    """
    from ..models.checkpoint import load_safetensors

    folder = model_dir(task_dir)
    encoder, _ = load_safetensors(folder / ENCODER_FILE)
    dec, _ = load_safetensors(folder / DECODER_FILE)
    decoder = {k[len("decoder."):]: v for k, v in dec.items() if k.startswith("decoder.")}
    return encoder, decoder


def start_network(ws, cfg, index: int, name: str, earlier: list):
    """The network task ``name`` (number ``index``, 0-based) starts from, on the CPU, and its lineage.

    Task 1: M0's encoder, a new decoder; later tasks: E_{t-1} and the decoder of M_{t-1}
    (``earlier[-1]``, the latest kg_rft task: ``index`` and ``earlier`` count kg_rft tasks only); always a new head. Decoder and head are drawn from the seed
    ``derive_seed(cfg.seed, name, "init")``, so every strategy that trains task ``name`` starts
    from the same weights (paired comparisons).

    Returns:
        ``(SegNet, lineage dict)``.

    Raises:
        InputError: the foundation file is missing.
    """
    import torch

    from ..errors import InputError
    from ..models.foundation import load_foundation
    from ..models.registry import build_segnet
    from ..retention.trainer import derive_seed

    torch.manual_seed(derive_seed(cfg.seed, name, "init"))
    net = build_segnet(cfg.arch, len(ws.labels(name)), cfg.recipe.head_prior)
    if index == 0:
        if not ws.foundation_path.is_file():
            raise InputError(ws.foundation_path, "foundation model missing; re-run 'medseqft init'")
        encoder0, _, _ = load_foundation(ws.foundation_path)
        net.encoder.load_state_dict(encoder0.state_dict(), strict=True)
        return net, {"from": "M0", "from_file": "models/foundation.safetensors",
                     "from_sha256": file_sha256(ws.foundation_path)}
    prev = earlier[-1]
    enc_state, dec_state = load_previous_parts(ws.task_dir(prev))
    net.encoder.load_state_dict(enc_state, strict=True)
    net.decoder.load_state_dict(dec_state, strict=True)
    return net, {"from": f"M{ws.task_names().index(prev) + 1} ({prev})", "from_file": f"tasks/{prev}/model/{ENCODER_FILE}",
                 "from_sha256": file_sha256(model_dir(ws.task_dir(prev)) / ENCODER_FILE)}
