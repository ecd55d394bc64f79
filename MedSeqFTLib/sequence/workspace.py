"""The workspace: the on-disk state of one refinement sequence (see docs/CONTRACTS.md).

``workspace.json`` holds the schema version, the foundation model reference, the
configuration and the task order; ``tasks/<name>/task.json`` each task's source, labels,
cases, split and status. Every write is atomic and every writer holds the workspace lock,
so a crash at any moment leaves the previous state readable.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..config import WorkspaceConfig
from ..errors import InputError
from ..io.atomic import atomic_write_json, read_json
from .lock import WorkspaceLock

__all__ = ["Workspace", "SCHEMA_VERSION", "TASK_STATUSES"]

SCHEMA_VERSION = 1
TASK_STATUSES = ("added", "selected", "training", "done", "failed")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_task_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise InputError("--name", f"task name {name!r} must be 1-64 letters, digits, '_', '.' or '-' and start with a letter or digit")
    return name


class Workspace:
    """A refinement workspace rooted at ``root``; open with ``Workspace.open``."""

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.config = WorkspaceConfig.from_dict(manifest.get("config", {}), where=f"{self.manifest_path}:config")

    # -- paths -----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "workspace.json"

    @property
    def foundation_path(self) -> Path:
        return self.root / "models" / "foundation.safetensors"

    def task_dir(self, name: str) -> Path:
        return self.root / "tasks" / name

    def cache_dir(self, name: str) -> Path:
        return self.root / "cache" / name

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    # -- opening and creating --------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> "Workspace":
        """Open an existing workspace.

        Raises:
            InputError: the folder or ``workspace.json`` is missing or malformed, or the
                workspace was written by a newer version (higher schema).
        """
        root = Path(root)
        if not root.exists():
            raise InputError(root, "workspace folder does not exist (create it with 'medseqft init')")
        path = root / "workspace.json"
        if not path.exists():
            raise InputError(root, "not a MedSeqFT workspace (no workspace.json); create one with 'medseqft init'")
        manifest = read_json(path)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("schema_version"), int):
            raise InputError(path, "malformed workspace file: no integer 'schema_version'")
        version = manifest["schema_version"]
        if version > SCHEMA_VERSION:
            raise InputError(path, f"workspace schema version {version} is newer than this MedSeqFT supports ({SCHEMA_VERSION}); upgrade MedSeqFT")
        if not isinstance(manifest.get("tasks"), list):
            raise InputError(path, "malformed workspace file: 'tasks' must be a list")
        return cls(root, manifest)

    @classmethod
    def create(cls, root: str | Path, config: WorkspaceConfig, foundation: dict) -> "Workspace":
        """Write a new ``workspace.json`` (the foundation file must already be in place).

        Raises:
            InputError: ``root`` already holds a workspace or is a non-empty foreign folder.
        """
        root = Path(root)
        if (root / "workspace.json").exists():
            raise InputError(root, "already a MedSeqFT workspace; open it instead of running init again")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "foundation": foundation,
            "config": config.to_dict(),
            "tasks": [],
        }
        atomic_write_json(root / "workspace.json", manifest)
        return cls(root, manifest)

    def lock(self, command: str, force: bool = False) -> WorkspaceLock:
        """Context manager that holds the workspace's write lock.

        ``force`` takes over a lock held on another host (whose processes cannot be checked).
        """
        return WorkspaceLock(self.root, command, force=force)

    # -- manifest --------------------------------------------------------------------------
    def update_manifest(self, change: Callable[[dict], None]) -> None:
        """Re-read ``workspace.json``, apply ``change`` to it, write it back atomically."""
        manifest = read_json(self.manifest_path)
        change(manifest)
        atomic_write_json(self.manifest_path, manifest)
        self.manifest = manifest
        self.config = WorkspaceConfig.from_dict(manifest.get("config", {}), where=f"{self.manifest_path}:config")

    def save_config(self, config: WorkspaceConfig) -> None:
        self.update_manifest(lambda m: m.__setitem__("config", config.to_dict()))

    # -- tasks -----------------------------------------------------------------------------
    def task_names(self) -> list[str]:
        return list(self.manifest["tasks"])

    def task(self, name: str) -> dict:
        if name not in self.manifest["tasks"]:
            known = ", ".join(self.manifest["tasks"]) or "none yet"
            raise InputError("--task", f"unknown task {name!r} in {self.root} (tasks: {known})")
        return read_json(self.task_dir(name) / "task.json")

    def save_task(self, name: str, record: dict) -> None:
        atomic_write_json(self.task_dir(name) / "task.json", record)

    def set_task_status(self, name: str, status: str) -> None:
        if status not in TASK_STATUSES:
            raise ValueError(f"unknown task status {status!r}; expected one of {TASK_STATUSES}")
        record = self.task(name)
        record["status"] = status
        self.save_task(name, record)

    def task_config(self, name: str):
        """The ``WorkspaceConfig`` task ``name`` trains and predicts with.

        The workspace settings, then the task's plan (``plan.planner``: spacing, patch,
        batch, normalisation chosen from its data), then the workspace's and the task's
        recorded overrides. A refined task keeps the configuration it was trained with (its
        model record's ``config``), whatever changed since.

        Raises:
            InputError: unknown task, or a plan/override value the config refuses.
        """
        from ..plan.overrides import effective_config

        record = self.task(name)
        if record.get("status") == "done":
            from .task_model import RECORD_FILE, model_dir

            path = model_dir(self.task_dir(name)) / RECORD_FILE
            frozen = read_json(path).get("config") if path.is_file() else None
            if frozen:
                return WorkspaceConfig.from_dict(frozen, where=f"{path}:config")
        return effective_config(self.config, record, self.manifest.get("overrides"), where=self.task_dir(name) / "task.json")

    def labels(self, name: str) -> dict:
        return dict(self.task(name)["labels"])

    def add_task(self, dataset: str | Path, name: Optional[str] = None, reporter=None,
                 train_fraction: float = 0.8, split_seed: Optional[int] = None,
                 modality: Optional[str] = None, device: Optional[str] = "auto", mode: str = "kg_rft",
                 adapter: Optional[dict] = None, channels: Optional[list] = None) -> dict:
        """Validate a dataset folder, fingerprint and plan it, register it as the next task.

        Nothing is written unless the whole dataset validates. ``name=None`` takes the
        dataset's name; ``modality`` (CT, MR, PET, other) is set by ``data.modality.apply_modality``;
        ``device`` is the device the plan sizes the patch for (``medseqft plan`` can re-plan).
        ``mode`` ``"adapter"`` with ``adapter`` = ``{"method", "shots", "shots_seed",
        "transductive"}`` (``adapters.config.TaskAdapter``) makes an adapter task; its support
        cases are drawn here from the training split and recorded. ``channels``: one modality name
        per image channel (``data.modality.parse_channels``; plain folders), see docs/modalities.md.

        Raises:
            InputError: bad dataset (see ``data.validate``), empty or duplicate task name, channel
                count different from the workspace model's, bad or contradicting modality.
        """
        from ..data.datasets import read_dataset
        from ..data.modality import apply_modality
        from ..data.split import make_split
        from ..data.validate import validate_dataset

        from ..adapters.config import MODES

        if mode not in MODES:
            raise InputError("--mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if (mode == "adapter") != (adapter is not None):
            raise InputError("--method", "an adapter task needs --method; --method and --shots need --mode adapter")
        if adapter is not None:  # the method before the (long) validation: a refusal costs nothing
            from ..adapters.config import TaskAdapter
            from ..adapters.surgery import check_method

            TaskAdapter(method=adapter.get("method"), shots=adapter.get("shots"),
                        transductive=bool(adapter.get("transductive", False)))
            check_method(self.config.arch, adapter.get("method"), any(
                (self.task(n).get("mode") or "kg_rft") != "adapter" for n in self.task_names()))
        spec = read_dataset(Path(dataset), channels=channels)
        name = _check_task_name(spec.name if name is None else name)
        if name in self.manifest["tasks"] or self.task_dir(name).exists():
            raise InputError("--name", f"a task named {name!r} already exists in {self.root}; choose another --name")
        n_channels = len(spec.channel_names)
        if n_channels != self.config.arch.in_channels:
            raise InputError(spec.root, f"dataset has {n_channels} channel(s) but the workspace model takes {self.config.arch.in_channels}")
        progress = None
        if reporter is not None:
            progress = lambda i, n, msg=None: reporter.progress("validate", name, i, n, message=msg)  # noqa: E731
        if modality is not None:
            apply_modality(spec, modality)
        warnings = validate_dataset(spec, progress=progress)
        for w in warnings:
            if reporter is not None:
                reporter.log(w, level="warning", task=name)
        ids = [c.id for c in spec.cases]
        split = make_split(ids, train_fraction=train_fraction,
                           seed=self.config.seed if split_seed is None else split_seed,
                           given=spec.given_split)
        record = {
            "name": name,
            "source": {"path": str(Path(spec.root).resolve()), "format": spec.format},
            "modality": spec.modality,
            "channel_names": dict(spec.channel_names),
            "channel_modalities": list(spec.channel_modalities),
            "labels": dict(spec.labels),
            "cases": [{"id": c.id, "images": [str(Path(p).resolve()) for p in c.images],
                       "label": str(Path(c.label).resolve()) if c.label else None} for c in spec.cases],
            "test_only": [{"id": c.id, "images": [str(Path(p).resolve()) for p in c.images]} for c in spec.test_only],
            "split": split,
            "mode": mode,
            **({"adapter": self._task_adapter(adapter, split)} if mode == "adapter" else {}),
            "status": "added",
            "warnings": list(warnings),
            "added": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        from ..io.atomic import atomic_write_json
        from ..plan.task_plan import fingerprint_path, fingerprint_task, plan_task

        # the plan sees the training split only, so nothing about the test cases leaks into it
        train = set(split["train"])
        fingerprint = fingerprint_task({**record, "cases": [c for c in record["cases"] if c["id"] in train]},
                                       reporter, name)
        record["plan"] = plan_task(self, record, fingerprint, device)
        record["overrides"] = {}
        # fingerprint, task.json, then the manifest: a crash in between leaves an orphan folder
        # that the duplicate-name check reports, never a manifest entry without its task.
        atomic_write_json(fingerprint_path(self, name), fingerprint)
        self.save_task(name, record)
        self.update_manifest(lambda m: m["tasks"].append(name))
        return record

    def _task_adapter(self, adapter: dict, split: dict) -> dict:
        """The validated ``TaskAdapter`` of a new adapter task, with its support drawn from ``split``."""
        from ..adapters.config import TaskAdapter, draw_support

        ta = TaskAdapter(method=adapter["method"], shots=adapter.get("shots"), shots_seed=int(adapter.get("shots_seed") or 0),
                         transductive=bool(adapter.get("transductive", False)))
        ta.support = draw_support(list(split["train"]), ta.shots, ta.shots_seed)
        return ta.to_dict()

    # -- data ------------------------------------------------------------------------------
    def case_ids(self, name: str, split: str = "train") -> list[str]:
        record = self.task(name)
        if split == "all":
            return [c["id"] for c in record["cases"]]
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        return list(record["split"][split])

    def prepared(self, name: str, split: str = "train", ids: Optional[Iterable[str]] = None) -> list:
        """Preprocessed ``(case_id, PreparedCase)`` pairs of a task, cached under ``WS/cache``."""
        from ..data.modality import preprocessing_modality
        from ..data.preprocess import prepare_cached

        record = self.task(name)
        cfg = self.task_config(name)
        by_id = {c["id"]: c for c in record["cases"]}
        wanted = list(ids) if ids is not None else self.case_ids(name, split)
        out = []
        for cid in wanted:
            case = by_id[cid]
            out.append((cid, prepare_cached(cid, [Path(p) for p in case["images"]],
                                            Path(case["label"]) if case.get("label") else None,
                                            cfg.preprocess, preprocessing_modality(record), self.cache_dir(name))))
        return out

    # -- summary ---------------------------------------------------------------------------
    def _training_summary(self, name: str, rec: dict) -> dict:
        """Settings a task trains with (or trained with) and, once refined, its check right after training."""
        from .task_model import RECORD_FILE, model_dir

        try:
            cfg = self.task_config(name)
        except InputError as exc:
            return {"settings_error": str(exc)}
        pp, rc = cfg.preprocess, cfg.retention
        iterations, lr, stage = rc.fft.iterations, rc.fft.lr, "FFT"
        if rec.get("adapter"):
            method = rec["adapter"].get("method")
            iterations, lr, stage = cfg.adapter.iterations, cfg.adapter.lr_for(method), f"adapter {method}"
        out = {"settings": {"spacing": list(pp.spacing), "patch_size": list(pp.patch_size), "normalization": pp.normalization,
                            "stage": stage, "iterations": iterations, "lr": lr, "schedule": cfg.recipe.schedule,
                            "augment": cfg.recipe.augment,
                            "overrides": {**(self.manifest.get("overrides") or {}), **(rec.get("overrides") or {})}}}
        path = model_dir(self.task_dir(name)) / RECORD_FILE
        if rec.get("status") == "done" and path.is_file():
            model_rec = read_json(path)
            check = (model_rec.get("validation") or {}).get("M_t") or {}
            out.update({"dice": check.get("dice"), "class_dice": check.get("classes"),
                        "failed_classes": model_rec.get("failed_classes", [])})
        return out

    def summary(self) -> dict:
        """What ``medseqft status`` shows: foundation, config essentials, tasks."""
        tasks = []
        for name in self.task_names():
            try:
                rec = self.task(name)
            except InputError as exc:
                tasks.append({"name": name, "status": "damaged", "error": str(exc)})
                continue
            tasks.append({
                "name": name, "status": rec["status"], "format": rec["source"]["format"],
                "modality": rec["modality"], "cases": len(rec["cases"]), "test_only": len(rec.get("test_only", [])),
                "labels": rec["labels"], "train": len(rec["split"]["train"]), "test": len(rec["split"]["test"]),
                "split_method": rec["split"].get("method"), "warnings": len(rec.get("warnings", [])),
                "buffer": (self.task_dir(name) / "buffer.json").exists(),
                "mode": rec.get("mode") or "kg_rft",
                **({"adapter": {k: rec["adapter"].get(k) for k in ("method", "shots", "transductive")}}
                   if rec.get("adapter") else {}),
                **self._training_summary(name, rec),
            })
        return {"root": str(self.root), "schema_version": self.manifest["schema_version"],
                "foundation": self.manifest.get("foundation", {}), "arch": self.config.arch.to_dict(), "tasks": tasks}
