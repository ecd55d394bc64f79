"""A tiny workspace built directly on disk: oblique anisotropic phantom images, random tiny models.

Shared by the inference, evaluation and report tests (imported by file location). Every file
follows docs/CONTRACTS.md: workspace.json, tasks/<name>/task.json, tasks/<name>/model/
{encoder,decoder}.safetensors + record.json, models/foundation.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from MedSeqFTLib.config import ArchConfig, PreprocessConfig, WorkspaceConfig
from MedSeqFTLib.io.atomic import atomic_write_json
from MedSeqFTLib.sequence.workspace import Workspace

SPACING = (1.2, 0.9, 2.5)
SIZE = (24, 20, 12)


def oblique_direction(angle_deg: float = 20.0) -> tuple:
    """Row-major 3x3 direction: a rotation about an oblique axis (not a permutation)."""
    a = np.deg2rad(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    return tuple((rz @ rx).ravel())


def write_case(folder: Path, cid: str, rng, labels_max: int = 1, size=SIZE, spacing=SPACING,
               origin=(-13.5, 22.25, 7.75)) -> tuple[Path, Path]:
    """Write ``<cid>_0000.nii.gz`` (CT-like intensities) and ``<cid>.nii.gz`` (ellipsoid labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y, z = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
    c = np.array(size) / 2 + rng.uniform(-2, 2, 3)
    r = np.array(size) / 4
    blob = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2
    label = (blob <= 1).astype(np.uint8)
    if labels_max >= 2:
        label[blob <= 0.3] = 2
    image = (-100.0 + 150.0 * label.astype(np.float32) + rng.normal(0, 20, size)).astype(np.float32)
    paths = []
    for arr, name in ((image, f"{cid}_0000.nii.gz"), (label, f"{cid}.nii.gz")):
        img = sitk.GetImageFromArray(np.transpose(arr, (2, 1, 0)))  # (X, Y, Z) -> ITK's (Z, Y, X)
        img.SetSpacing(spacing)
        img.SetDirection(oblique_direction())
        img.SetOrigin(origin)
        sitk.WriteImage(img, str(folder / name))
        paths.append(folder / name)
    return paths[0], paths[1]


def _save_model(ws: Workspace, name: str, seed: int, n_classes: int, record: dict) -> None:
    import torch

    from MedSeqFTLib.models.checkpoint import save_safetensors
    from MedSeqFTLib.models.registry import build_segnet

    torch.manual_seed(seed)
    model = build_segnet(ws.config.arch, n_classes)
    folder = ws.task_dir(name) / "model"
    save_safetensors(folder / "encoder.safetensors", dict(model.encoder.state_dict()), {"kind": "encoder", "task": name})
    dec = {f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}
    dec.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
    save_safetensors(folder / "decoder.safetensors", dec, {"kind": "decoder", "task": name})
    atomic_write_json(folder / "record.json", record)


def _record(stages: dict) -> dict:
    return {"stages": {s: {"iterations": it, "time_s": t, "peak_memory_bytes": 50 * 2 ** 20,
                           "memory_kind": "cpu_peak_rss",
                           "losses": {"seg": [[k, 1.0 / (k + 1)] for k in range(1, it + 1, max(1, it // 10))]}}
                       for s, (it, t) in stages.items()}}


def build_workspace(root: Path, tasks=("alpha", "beta"), n_cases: int = 3, statuses=None) -> Workspace:
    """Workspace with ``tasks`` (2 test cases + train cases each), all ``done`` unless ``statuses`` says otherwise."""
    import torch

    from MedSeqFTLib.models.foundation import save_foundation
    from MedSeqFTLib.models.registry import build_encoder

    cfg = WorkspaceConfig(arch=ArchConfig(name="small_unet", feature_size=4),
                          preprocess=PreprocessConfig(spacing=(2.0, 2.0, 2.0), patch_size=(16, 16, 16)))
    root = Path(root)
    (root / "models").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(99)
    save_foundation(root / "models" / "foundation.safetensors", build_encoder(cfg.arch), None,
                    {"arch": cfg.arch.to_dict(), "ssl_pretext": None})
    ws = Workspace.create(root, cfg, {"source": "synthetic", "sha256": "0" * 64})
    rng = np.random.default_rng(0)
    statuses = statuses or {}
    for k, name in enumerate(tasks):
        n_labels = 2 if k % 2 == 0 else 1
        data = root / "data" / name
        cases = []
        for i in range(n_cases):
            img, lab = write_case(data, f"{name}_{i:03d}", rng, labels_max=n_labels)
            cases.append({"id": f"{name}_{i:03d}", "images": [str(img)], "label": str(lab)})
        labels = {"background": 0, "organ": 1, **({"core": 2} if n_labels == 2 else {})}
        record = {"name": name, "source": {"path": str(data), "format": "plain"}, "modality": "CT",
                  "channel_names": {"0": "CT"}, "labels": labels, "cases": cases, "test_only": [],
                  "split": {"train": [cases[0]["id"]], "test": [c["id"] for c in cases[1:]], "seed": 0,
                            "method": "random"},
                  "status": statuses.get(name, "done"), "warnings": []}
        ws.save_task(name, record)
        ws.update_manifest(lambda m, n=name: m["tasks"].append(n))
        stages = {"fft": (100, 10.0)} if k == 0 else {"kd_fft": (200, 26.0), "lora_kd": (50, 3.0), "merge": (1, 1.0)}
        _save_model(ws, name, seed=k + 1, n_classes=len(labels), record=_record(stages))
    return Workspace.open(root)
