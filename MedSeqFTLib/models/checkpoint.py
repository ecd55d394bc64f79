"""Reading and writing weights: our safetensors files and foreign (VoCo / MONAI-SSL) checkpoints.

Own files are safetensors with one metadata key ``"medseqft"`` holding a JSON object.
Foreign ``.pt/.pth/.bin/.ckpt`` files are read with ``torch.load(weights_only=True)`` only:
a pickle that wants to build arbitrary objects is refused, never executed.

Key layouts understood by ``map_to_encoder`` (after unwrapping ``state_dict``/``net``/
``model``/``student`` and stripping ``module.``/``backbone.``, ``swin_vit`` -> ``swinViT``):

* VoCo: ``swinViT.*``, ``encoder1..4.*``, ``encoder10.*`` (+ the ``student.*``/``teacher.*``
  SSL head, see below);
* MONAI ``model_swinvit.pt``: ``patch_embed.*``, ``layers{1..4}.0.blocks.{0,1}.*`` with
  ``mlp.fc1/fc2``, ``layers{n}.0.downsample.*`` (what ``SwinUNETR.load_from`` maps);
* our own encoder state dicts, with or without the ``encoder.`` prefix.

SSL heads in foreign files (VoCo's ``student.*``/``teacher.*``, MONAI SSL's ``rotation_head.*``
...) are recognised by ``ssl_import.find_ssl_head``.

Only tensors whose mapped name *and* shape match are copied; the ``MappingReport`` says what
was loaded, missing, unexpected or of the wrong shape.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ArchConfig
from ..errors import InputError
from ..io.atomic import atomic_write_with

__all__ = ["save_safetensors", "load_safetensors", "read_foreign_checkpoint", "normalise_keys", "map_to_encoder",
           "MappingReport", "import_foundation", "METADATA_KEY", "FOREIGN_SUFFIXES"]

METADATA_KEY = "medseqft"
FOREIGN_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_WRAPPERS = ("state_dict", "net", "model", "student")
_PREFIXES = ("module.", "backbone.")
# constant buffers (recomputed at construction) do not count towards the match fraction
_CONSTANT_SUFFIXES = ("relative_position_index",)


def save_safetensors(path: str | Path, tensors: dict, metadata: dict) -> Path:
    """Write ``tensors`` (name -> Tensor) and ``metadata`` (JSON-able) atomically.

    Tensors are copied to contiguous CPU memory (safetensors refuses shared storage).
    """
    from safetensors.torch import save_file

    payload = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {METADATA_KEY: json.dumps(metadata, sort_keys=True)}
    return atomic_write_with(path, lambda tmp: save_file(payload, str(tmp), metadata=meta))


def load_safetensors(path: str | Path) -> tuple[dict, dict]:
    """Read a safetensors file: ``(tensors on CPU, metadata dict)``.

    ``metadata`` is our JSON object, ``{}`` for a foreign safetensors file without it.

    Raises:
        InputError: missing file, not a safetensors file, corrupt, or bad metadata JSON.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw = fh.metadata() or {}
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(path, f"not a readable safetensors file ({exc.__class__.__name__}: {exc})") from None
    if METADATA_KEY not in raw:
        return tensors, {}
    try:
        metadata = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed {METADATA_KEY!r} metadata JSON: {exc.msg}") from None
    if not isinstance(metadata, dict):
        raise InputError(path, f"{METADATA_KEY!r} metadata must be a JSON object")
    return tensors, metadata


def _unwrap(obj, path: Path) -> dict:
    import torch

    while isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            # a mixed dict (e.g. {"epoch": 3, "weights": {...}}): keep the tensors only
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
            break
        obj = inner
    raise InputError(path, "no tensor state dict found (looked inside 'state_dict', 'net', 'model', 'student')")


def normalise_keys(state: dict) -> dict:
    """Strip ``module.``/``backbone.`` (also after ``student.``) and rename ``swin_vit`` -> ``swinViT``.

    Where two keys normalise to the same name, the first one wins.
    """
    out = {}
    for key, value in state.items():
        name = key
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix):], True
            if name.startswith("student.") and name[len("student."):].startswith(_PREFIXES):
                name, changed = name[len("student."):], True
        name = name.replace("swin_vit", "swinViT")
        out.setdefault(name, value)
    return out


def read_foreign_checkpoint(path: str | Path) -> dict:
    """Tensor state dict of a ``.pt/.pth/.bin/.ckpt`` file (or a foreign ``.safetensors``).

    Unwraps ``state_dict``/``net``/``model``/``student`` wrappers and normalises key names
    (see ``normalise_keys``).

    Raises:
        InputError: missing/corrupt file, no tensors inside, or a pickle that would build
            arbitrary objects ("refusing to unpickle ...": nothing of it is executed).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.suffix == ".safetensors":
        return normalise_keys(load_safetensors(path)[0])
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise InputError(path, f"refusing to unpickle a checkpoint that contains code or non-tensor objects ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise InputError(path, f"not a readable PyTorch checkpoint ({exc.__class__.__name__}: {exc})") from None
    return normalise_keys(_unwrap(obj, path))


@dataclass
class MappingReport:
    """What ``map_to_encoder`` did.

    Attributes:
        loaded: encoder keys filled from the checkpoint.
        missing: encoder keys not found in the checkpoint (constant buffers excluded).
        unexpected: checkpoint keys that map to no encoder key.
        shape_mismatch: "key: checkpoint shape vs encoder shape" for name matches of wrong shape.
        n_encoder: encoder tensors that count (constant buffers excluded).
    """

    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    shape_mismatch: list = field(default_factory=list)
    n_encoder: int = 0

    @property
    def fraction(self) -> float:
        counted = [k for k in self.loaded if not k.endswith(_CONSTANT_SUFFIXES)]
        return len(counted) / self.n_encoder if self.n_encoder else 0.0

    def summary(self) -> str:
        counted = len([k for k in self.loaded if not k.endswith(_CONSTANT_SUFFIXES)])
        return (f"{counted} of {self.n_encoder} encoder tensors match ({len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.shape_mismatch)} of wrong shape)")

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        return {"loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "shape_mismatch": self.shape_mismatch, "n_encoder": self.n_encoder, "fraction": self.fraction}


def _candidate_name(key: str, is_swin: bool) -> str:
    if key.startswith("encoder."):
        key = key[len("encoder."):]
    if is_swin:
        if key.startswith(("patch_embed.", "layers1", "layers2", "layers3", "layers4")):
            key = "swinViT." + key  # MONAI model_swinvit.pt has no swinViT. prefix
        key = key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")
    return key


def map_to_encoder(state: dict, arch: ArchConfig, template: dict | None = None) -> tuple[dict, MappingReport]:
    """Rename checkpoint tensors to our encoder's names and keep those whose shape matches.

    Args:
        state: normalised checkpoint state dict (``read_foreign_checkpoint`` output).
        arch: the encoder it should fill.
        template: ``encoder.state_dict()`` to match against; built from ``arch`` if omitted.

    Returns:
        (mapped, report): ``mapped`` uses encoder-relative names (``swinViT...``, ``levels...``),
        ready for ``encoder.load_state_dict(mapped, strict=False)``.
    """
    if template is None:
        from .registry import build_encoder

        template = build_encoder(arch).state_dict()
    is_swin = arch.name == "swin_unetr"
    report = MappingReport(n_encoder=sum(1 for k in template if not k.endswith(_CONSTANT_SUFFIXES)))
    mapped = {}
    for key, value in state.items():
        name = _candidate_name(key, is_swin)
        if name not in template:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(template[name].shape):
            report.shape_mismatch.append(f"{key}: {tuple(value.shape)} vs {tuple(template[name].shape)}")
        elif name not in mapped:
            mapped[name] = value.to(template[name].dtype)
            report.loaded.append(name)
    report.missing = [k for k in template if k not in mapped and not k.endswith(_CONSTANT_SUFFIXES)]
    return mapped, report


def _split_prefix(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def import_foundation(path: str | Path, arch: ArchConfig | None = None, min_fraction: float = 0.8):
    """Read a foundation model file into encoder (and SSL-head) state dicts.

    Our own ``.safetensors`` (metadata ``kind == "foundation"``) give arch and pretext
    themselves; foreign files (``.pt/.pth/.bin/.ckpt`` or plain safetensors) are mapped by
    name into ``arch`` (default: a SwinUNETR sized from ``patch_embed``'s weight).

    Returns:
        (encoder_state, ssl_head_state or None, metadata, report). ``encoder_state`` has
        encoder-relative names; ``metadata`` has ``kind``, ``arch``, ``ssl_pretext``, ``source``;
        a foreign file with a published SSL head (``ssl_import``) also gives ``ssl_options``,
        ``patch_size`` and ``ssl_head_origin``, and its head keys are not counted as unexpected.

    Raises:
        InputError: unreadable/unsafe file, arch conflicting with the file's, or fewer than
            ``min_fraction`` of the encoder's tensors matched ("only N of M encoder tensors match").
    """
    path = Path(path)
    if path.suffix not in FOREIGN_SUFFIXES + (".safetensors",):
        raise InputError(path, f"unsupported model file type {path.suffix!r}; expected .safetensors or one of {list(FOREIGN_SUFFIXES)}")
    head_state = None
    if path.suffix == ".safetensors":
        tensors, metadata = load_safetensors(path)
    else:
        tensors, metadata = read_foreign_checkpoint(path), {}
    if metadata.get("kind") == "foundation":
        own_arch = ArchConfig.from_dict(metadata.get("arch", {}), where=f"{path} metadata.arch")
        if arch is not None and arch != own_arch:
            raise InputError(path, f"model was built for {own_arch.to_dict()}, not the requested {arch.to_dict()}")
        arch = own_arch
        state = _split_prefix(tensors, "encoder.")
        head_state = _split_prefix(tensors, "ssl_head.") or None
        metadata = dict(metadata)
    else:
        from .ssl_import import find_ssl_head

        state = normalise_keys(tensors)
        if arch is None:
            arch = _guess_swin_arch(state, path)
        metadata = {"kind": "foreign", "arch": arch.to_dict(), "ssl_pretext": None}
        found = find_ssl_head(state, arch, path)
        if found is not None:  # a published SSL head (VoCo, MONAI SSL): kept for MDS
            head_state = found.state
            state = {k: v for k, v in state.items() if k not in set(found.keys)}
            metadata.update(ssl_pretext=found.pretext, ssl_options=found.options, patch_size=list(found.patch_size),
                            ssl_head_origin=found.layout)
    metadata["source"] = str(path)
    mapped, report = map_to_encoder(state, arch)
    if report.fraction < float(min_fraction):
        raise InputError(path, f"only {report.summary()}; need at least {min_fraction:.0%} for {arch.name} "
                               f"feature_size {arch.feature_size} (wrong architecture or not an encoder checkpoint?)")
    return mapped, head_state, metadata, report


def _guess_swin_arch(state: dict, path: Path) -> ArchConfig:
    for key in ("swinViT.patch_embed.proj.weight", "patch_embed.proj.weight", "encoder.swinViT.patch_embed.proj.weight"):
        if key in state and state[key].ndim == 5:
            out_c, in_c = state[key].shape[:2]
            if out_c % 12 == 0:
                return ArchConfig(name="swin_unetr", in_channels=int(in_c), feature_size=int(out_c))
    raise InputError(path, "cannot tell the architecture of this checkpoint (no Swin patch_embed weight); pass --arch")
