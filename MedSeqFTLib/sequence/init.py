"""Creating a workspace: resolve the foundation model, import it, write ``workspace.json``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

from ..presets import default_preset, preset
from ..errors import InputError
from .workspace import Workspace

__all__ = ["init_workspace"]


def _check_target(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise InputError(root, "exists and is not a folder")
    if (root / "workspace.json").exists():
        raise InputError(root, "already a MedSeqFT workspace; open it instead of running init again")
    if root.exists() and any(root.iterdir()):
        raise InputError(root, "folder is not empty; choose a new or empty folder for the workspace")


def _imported_head(source: Path, arch, pretext: Optional[str], meta: dict, head_state: Optional[dict]):
    """The published SSL head ``import_foundation`` found (loaded strictly), or ``None``."""
    if not pretext or not head_state:
        return None
    from ..models.ssl import get_pretext

    head = get_pretext(pretext, meta.get("ssl_options")).build_head(arch)
    try:
        head.load_state_dict(head_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(source, f"its {meta.get('ssl_head_origin', pretext)} does not fit {arch.name} feature size "
                                 f"{arch.feature_size} ({first})") from None
    return head


def init_workspace(root, foundation: str, arch: Optional[str] = None, preset_name: Optional[str] = None,
                   feature_size: Optional[int] = None, legacy_merge: bool = True, min_match: float = 0.8,
                   seed: int = 0, reporter=None):
    """Create a workspace; returns ``(Workspace, import report text or None)``.

    Nothing is left behind when the foundation cannot be used: the model is imported and
    checked in memory before the folder is written.

    Raises:
        InputError: target not empty, foundation file missing/unsafe/incompatible, too few
            encoder weights match.
    """
    from ..models.checkpoint import import_foundation, load_safetensors
    from ..models.foundation import save_foundation, sha256_file
    from ..models.registry import build_encoder

    root = Path(root)
    _check_target(root)
    report_text = None
    if foundation == "demo":
        from ..demo_foundation import demo_foundation

        source = Path(demo_foundation(reporter=reporter))
    else:
        source = Path(foundation)
        if not source.exists():
            raise InputError(source, "foundation checkpoint not found")
        if not source.is_file():
            raise InputError(source, "foundation checkpoint is not a file")

    own_meta = None
    if source.suffix == ".safetensors":
        _, own_meta = load_safetensors(source)
        if not own_meta or own_meta.get("kind") != "foundation":
            own_meta = None
    if own_meta is not None:
        from ..config import ArchConfig

        arch_cfg = ArchConfig.from_dict(own_meta["arch"], where=f"{source}:arch")
        if arch is not None and arch != arch_cfg.name:
            raise InputError(source, f"this foundation file is a {arch_cfg.name} model, not {arch}")
        cfg = preset(preset_name or default_preset(arch_cfg.name))
        cfg.arch = arch_cfg
        if own_meta.get("preprocess") and preset_name is None:
            from ..config import PreprocessConfig

            cfg.preprocess = PreprocessConfig.from_dict(own_meta["preprocess"], where=f"{source}:preprocess")
        pretext = own_meta.get("ssl_pretext")
        root.mkdir(parents=True, exist_ok=True)
        (root / "models").mkdir(exist_ok=True)
        shutil.copyfile(source, root / "models" / "foundation.safetensors")
    else:
        arch_name = arch or "swin_unetr"
        cfg = preset(preset_name or default_preset(arch_name))
        cfg.arch = cfg.arch.replace(name=arch_name, legacy_patch_merging=legacy_merge,
                                    feature_size=feature_size or (48 if arch_name == "swin_unetr" else cfg.arch.feature_size))
        enc_state, head_state, meta, report = import_foundation(source, cfg.arch, min_fraction=min_match)
        report_text = str(report)
        pretext = meta.get("ssl_pretext")  # None: no SSL head we know in the checkpoint (never a random one)
        encoder = build_encoder(cfg.arch)
        encoder.load_state_dict(enc_state, strict=False)
        ssl_head = _imported_head(source, cfg.arch, pretext, meta, head_state)
        if ssl_head is None and reporter is not None:
            reporter.log(f"{source}: the checkpoint has no SSL head; MDS will stop and ask for one: 'medseqft select WS "
                         "--fit-ssl-head' (fit it on the frozen M0, recorded) or '--random' (random buffer)", level="warning")
        root.mkdir(parents=True, exist_ok=True)
        head_meta = {k: meta[k] for k in ("ssl_options", "patch_size", "ssl_head_origin") if ssl_head is not None and k in meta}
        save_foundation(root / "models" / "foundation.safetensors", encoder, ssl_head, {
            "kind": "foundation", "arch": cfg.arch.to_dict(), "ssl_pretext": pretext, **head_meta,
            "preprocess": cfg.preprocess.to_dict(), "source": str(source.resolve()),
            "source_sha256": sha256_file(source), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if feature_size is not None and feature_size != cfg.arch.feature_size:
        raise InputError("--feature-size", f"the foundation file has feature size {cfg.arch.feature_size}, not {feature_size}")
    cfg.seed = int(seed)
    foundation_info = {
        "source": "demo" if foundation == "demo" else str(source.resolve()),
        "sha256": sha256_file(source),
        "file": "models/foundation.safetensors",
        "ssl_pretext": pretext,
    }
    return Workspace.create(root, cfg, foundation_info), report_text
