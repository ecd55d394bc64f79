"""Product workspaces for the benchmark: foundation files, init + add-task, resumable.

A strategy's workspace is made exactly as a user would make it (``init_workspace`` with a
foundation file, ``Workspace.add_task`` per dataset), then its configuration is set
(``strategies.configure``). Two foundation files are derived here: a randomly initialised
one (train from scratch) and one whose encoder is a refined model's final encoder (transfer).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

__all__ = ["random_foundation", "refined_foundation", "open_or_create"]


def random_foundation(path: Path, like: Path, seed: int) -> Path:
    """Write a foundation file with ``like``'s architecture and metadata but random weights.

    Args:
        path: destination (``.safetensors``); kept if it already exists (resume).
        like: the real M0 file.
        seed: seeds ``torch`` before the modules are built.

    Raises:
        InputError: ``like`` is not a MedSeqFT foundation file.
    """
    import torch

    from ..config import ArchConfig
    from ..models.foundation import load_foundation, save_foundation
    from ..models.registry import build_encoder, build_ssl_head

    path = Path(path)
    if path.is_file():
        return path
    _, head, meta = load_foundation(like)
    arch = ArchConfig.from_dict(meta["arch"], where=f"{like}:arch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        encoder = build_encoder(arch)
        ssl_head = build_ssl_head(arch, meta["ssl_pretext"]) if head is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    save_foundation(path, encoder, ssl_head, {**meta, "source": f"random initialisation (seed {seed}) of {Path(like).name}",
                                              "benchmark": "tfs"})
    return path


def refined_foundation(path: Path, ws, like: Path) -> Path:
    """Write a foundation file whose encoder is the last finished task's E_T of workspace ``ws``.

    The SSL head and metadata come from ``like`` (M0), so buffer selection still works.

    Raises:
        InputError: ``ws`` has no finished task.
    """
    from ..errors import InputError
    from ..inference.loader import finished_tasks, load_encoder_state
    from ..models.foundation import load_foundation, save_foundation

    path = Path(path)
    if path.is_file():
        return path
    done = finished_tasks(ws)
    if not done:
        raise InputError(ws.root, "no finished task to take the refined encoder from")
    encoder, head, meta = load_foundation(like)
    encoder.load_state_dict(load_encoder_state(ws, done[-1]), strict=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_foundation(path, encoder, head, {**meta, "source": f"final encoder of {ws.root} (after {done[-1]})",
                                          "benchmark": "transfer"})
    return path


def open_or_create(ws_dir: Path, foundation: Path, datasets: list, configure_fn, settings, reporter=None,
                   overrides: Optional[dict] = None):
    """Open the workspace at ``ws_dir`` or create it; add every dataset not added yet.

    Args:
        ws_dir: workspace folder (a half-made folder without ``workspace.json`` is removed).
        foundation: foundation file for ``init_workspace``.
        datasets: dataset folders, in task order.
        configure_fn: ``configure_fn(cfg) -> cfg`` applied right after ``init``.
        overrides: workspace-wide overrides of the tasks' plans (``strategies.workspace_overrides``).
        settings: ``BenchmarkSettings`` (split seed and train fraction).

    Returns:
        The open ``Workspace`` with ``len(datasets)`` tasks.
    """
    from ..sequence.init import init_workspace
    from ..sequence.workspace import Workspace

    ws_dir = Path(ws_dir)
    if ws_dir.exists() and not (ws_dir / "workspace.json").is_file():
        shutil.rmtree(ws_dir)  # our own folder, interrupted during init
    if not ws_dir.exists():
        ws, _ = init_workspace(ws_dir, str(foundation), reporter=reporter)
        with ws.lock("benchmark"):
            ws.save_config(configure_fn(ws.config))
            ws.update_manifest(lambda m: m.__setitem__("overrides", dict(overrides or {})))
    ws = Workspace.open(ws_dir)
    have = len(ws.task_names())
    if have < len(datasets):
        with ws.lock("benchmark"):
            for dataset in datasets[have:]:
                ws.add_task(dataset, reporter=reporter, train_fraction=float(settings.train_fraction),
                            split_seed=int(settings.split_seed))
        ws = Workspace.open(ws_dir)
    return ws
