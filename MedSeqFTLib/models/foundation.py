"""Our own foundation-model files (M0): encoder + SSL head + metadata in one safetensors file.

Tensor names: ``encoder.<encoder key>`` and ``ssl_head.<head key>``. Metadata (JSON under
the safetensors key ``"medseqft"``)::

    {"kind": "foundation", "arch": ArchConfig.to_dict(), "ssl_pretext": "masked" | "voco" | "voco_v2" |
     "monai_ssl" | null, "preprocess": {...}, "source_sha256": "...", "created": unix seconds, ...}

Optional keys: ``ssl_options`` (pretext settings that shape the head, e.g. MONAI SSL's
``{"upsample": "vae"}``), ``patch_size`` (the input size the head was trained on) and
``ssl_head_origin`` (the published layout an imported head came from). ``ssl_pretext: null``
means "no SSL head": MDS then refuses unless told how to get one (see ``selection.ssl_head``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ..config import ArchConfig
from ..errors import InputError
from .checkpoint import load_safetensors, save_safetensors

__all__ = ["save_foundation", "load_foundation", "sha256_file"]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    Raises:
        InputError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__}: {exc.strerror or exc})") from None
    return digest.hexdigest()


def save_foundation(path: str | Path, encoder, ssl_head, metadata: dict) -> Path:
    """Save M0 atomically.

    Args:
        path: destination ``.safetensors`` file.
        encoder: the encoder module (its ``state_dict`` is stored under ``encoder.``).
        ssl_head: SSL head module or ``None`` (e.g. an imported VoCo encoder without our head).
        metadata: must contain ``arch`` (dict) and ``ssl_pretext`` (name or None when no head),
            plus ``ssl_options`` when the head was built with non-default pretext settings;
            ``kind`` and ``created`` are filled in.

    Raises:
        ValueError: metadata without ``arch``, or an SSL head without ``ssl_pretext``.
    """
    if "arch" not in metadata:
        raise ValueError("foundation metadata needs 'arch' (ArchConfig.to_dict())")
    if ssl_head is not None and not metadata.get("ssl_pretext"):
        raise ValueError("foundation metadata needs 'ssl_pretext' when an SSL head is saved")
    meta = {"created": time.time(), **metadata, "kind": "foundation"}
    if ssl_head is None:
        meta["ssl_pretext"] = None
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    if ssl_head is not None:
        tensors.update({f"ssl_head.{k}": v for k, v in ssl_head.state_dict().items()})
    return save_safetensors(path, tensors, meta)


def load_foundation(path: str | Path):
    """Load M0 saved by ``save_foundation``.

    Returns:
        (encoder, ssl_head or None, metadata); modules are in eval mode on the CPU.

    Raises:
        InputError: not our foundation file, unknown arch, or tensors that do not fit the arch.
    """
    from .registry import build_encoder
    from .ssl import get_pretext

    path = Path(path)
    tensors, metadata = load_safetensors(path)
    if metadata.get("kind") != "foundation":
        raise InputError(path, "not a MedSeqFT foundation model (no 'kind: foundation' metadata); import it with init --foundation")
    arch = ArchConfig.from_dict(metadata.get("arch", {}), where=f"{path} metadata.arch")
    encoder = build_encoder(arch)
    _load_strict(encoder, {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}, path, "encoder")
    ssl_head = None
    head_state = {k[9:]: v for k, v in tensors.items() if k.startswith("ssl_head.")}
    if metadata.get("ssl_pretext"):
        ssl_head = get_pretext(metadata["ssl_pretext"], metadata.get("ssl_options")).build_head(arch)
        _load_strict(ssl_head, head_state, path, "ssl_head")
        ssl_head.eval()
    return encoder.eval(), ssl_head, metadata


def _load_strict(module, state: dict, path: Path, what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        raise InputError(path, f"{what} tensors do not fit the stored arch: {len(missing)} missing "
                               f"{missing[:3]}, {len(extra)} unexpected {extra[:3]}, {len(wrong)} of wrong shape {wrong[:3]}")
    module.load_state_dict(state, strict=True)
