"""Build a small SSL-pretrained foundation model (M0) from images, and the cached demo M0.

``build_foundation`` is what ``medseqft pretrain`` runs: read every image of the given
dataset folders, image folders or files, preprocess it like a workspace would (reorient to
RAS, resample, window/normalise), SSL-pretrain a fresh backbone on random patches and write
our safetensors foundation file with its recipe in the metadata.

``demo_foundation`` is the M0 of ``medseqft init WS --foundation demo`` and of the demo:
built from phantoms generated with ``M0_PHANTOM_SEED`` (not the demo tasks' seed, so M0 never
saw the demo's cases) by a fixed recipe, and cached under ``$MEDSEQFT_CACHE`` (default
``~/.cache/medseqft``). The package ships one build of the current recipe in
``MedSeqFTLib/resources`` so a fresh machine need not pretrain first (``medseqft pretrain``
or ``MEDSEQFT_REBUILD_DEMO_M0=1`` rebuilds it). The cache file name holds a hash of the recipe, so changing the recipe
(or the phantom generator's version) builds a new file instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

from .config import ArchConfig, PreprocessConfig
from .presets import preset
from .errors import InputError

__all__ = ["M0_PHANTOM_SEED", "demo_recipe", "recipe_key", "default_cache_dir", "collect_images", "load_volumes",
           "build_foundation", "demo_foundation", "packaged_foundation_dir"]

M0_PHANTOM_SEED = 7  # the demo's tasks use sequence.demo.DEMO_SEED (2025)
_RECIPE_VERSION = 1


def demo_recipe() -> dict:
    """Everything that decides the demo M0's weights (hashed into the cache key)."""
    from .data.phantoms import GENERATOR_VERSION

    cfg = preset("cpu_demo")
    # M0's own pre-training preprocessing, fixed here: the tasks' plans may choose other
    # spacings and patches, and the shipped build must not change when they do
    preprocess = {"spacing": [3.0, 3.0, 3.0], "ct_window": [-175.0, 250.0], "patch_size": [32, 32, 32],
                  "crop_foreground": True, "pos_fraction": 0.5}
    return {
        "recipe_version": _RECIPE_VERSION,
        "phantoms": {"tasks": 3, "cases": 6, "test_cases": 0, "size": 48, "seed": M0_PHANTOM_SEED,
                     "generator_version": GENERATOR_VERSION},
        "arch": cfg.arch.to_dict(),
        "preprocess": preprocess,
        "pretext": "masked",
        "steps": 200,
        "batch_size": 2,
        "lr": 2e-3,
        "seed": M0_PHANTOM_SEED,
        "patch_size": list(preprocess["patch_size"]),
    }


def recipe_key(recipe: dict) -> str:
    """First 16 hex digits of the SHA-256 of the recipe's canonical JSON."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def default_cache_dir(override: Optional[str | Path] = None) -> Path:
    """``override``, else ``$MEDSEQFT_CACHE``, else ``~/.cache/medseqft``."""
    if override is not None:
        return Path(override)
    env = os.environ.get("MEDSEQFT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "medseqft"


def collect_images(sources: Sequence[str | Path]) -> list[tuple[list[Path], str]]:
    """Every image of ``sources`` as ``(channel files, modality)``, in a stable order.

    A source is a dataset folder (nnU-Net v2 / MSD / plain: labelled and test-only cases,
    labels ignored), a folder of image files (each one single-channel CT), or one image file.

    Raises:
        InputError: a source that does not exist, is not a dataset, image folder or image,
            or no image at all.
    """
    from .data.datasets import image_files, read_dataset
    from .data.imageio import image_suffix

    found: list[tuple[list[Path], str]] = []
    for src in sources:
        src = Path(src).expanduser()
        if not src.exists():
            raise InputError(src, "not found; give dataset folders, image folders or image files")
        if src.is_file():
            if image_suffix(src) is None:
                raise InputError(src, "not a supported image file")
            found.append(([src.absolute()], "CT"))
        elif (src / "dataset.json").is_file() or (src / "images").is_dir():
            spec = read_dataset(src)
            for case in list(spec.cases) + list(spec.test_only):
                found.append(([Path(p) for p in case.images], spec.modality))
        else:
            found.extend(([p.absolute()], "CT") for p in image_files(src))
    if not found:
        raise InputError(", ".join(str(s) for s in sources) or "--data", "no images found to pretrain on")
    return found


def load_volumes(images: Sequence[tuple[list[Path], str]], preprocess: PreprocessConfig, reporter=None) -> list:
    """Preprocess each image to a (C, X, Y, Z) float32 array (``data.preprocess``)."""
    from .data.preprocess import prepare_image_for_inference

    volumes = []
    for i, (paths, modality) in enumerate(images, start=1):
        array, _ = prepare_image_for_inference(paths, preprocess, modality)
        volumes.append(array)
        if reporter is not None:
            reporter.progress("pretrain", "reading images", i, len(images), message=f"read {paths[0].name}")
            reporter.check_cancel()
    return volumes


def _sources_sha256(images: Sequence[tuple[list[Path], str]]) -> str:
    # the sorted source file names (not folders, which may be temporary; not bytes: cheap)
    names = sorted(p.name for paths, _ in images for p in paths)
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def build_foundation(out: str | Path, sources: Sequence[str | Path], *, arch: Optional[ArchConfig] = None,
                     pretext: str = "masked", steps: int = 200, seed: int = 0, patch_size: Optional[Sequence[int]] = None,
                     batch_size: int = 2, lr: float = 2e-3, preprocess: Optional[PreprocessConfig] = None,
                     reporter=None, extra_metadata: Optional[dict] = None) -> dict:
    """SSL-pretrain ``arch`` on every image of ``sources`` and save M0 to ``out``.

    Args:
        out: destination ``.safetensors`` file (written atomically).
        sources: dataset folders, image folders or image files (see ``collect_images``).
        arch: backbone (default: the ``cpu_demo`` small U-Net).
        pretext: ``"masked"`` or ``"voco"``.
        steps, seed, batch_size, lr: optimiser settings (``models.pretrain.pretrain``).
        patch_size: training patch (default ``preprocess.patch_size``); stored as the input
            size MDS scores at.
        preprocess: default ``cpu_demo``'s.
        reporter: progress (stage ``"pretrain"``) and cancel.

    Returns:
        The metadata written (``arch``, ``ssl_pretext``, ``preprocess``, ``patch_size``,
        ``source_sha256``, ``n_volumes``, ``final_loss``, ...).

    Raises:
        InputError: bad sources, steps or patch size (see ``models.pretrain``).
        errors.Cancelled: the reporter asked to stop (nothing is written).
    """
    from .models.foundation import save_foundation
    from .models.pretrain import pretrain

    cfg = preset("cpu_demo")
    arch = arch or cfg.arch
    preprocess = preprocess or cfg.preprocess
    patch = tuple(int(p) for p in (patch_size or preprocess.patch_size))
    t0 = time.perf_counter()
    images = collect_images(sources)
    volumes = load_volumes(images, preprocess, reporter)

    def progress(step: int, total: int, losses: dict) -> None:
        if reporter is not None:
            reporter.progress("pretrain", None, step, total, losses=losses)
            reporter.check_cancel()

    encoder, head, losses = pretrain(volumes, arch, pretext, steps, seed, patch, batch_size, lr, progress)
    tail = losses[-max(1, len(losses) // 10):]
    metadata = {
        "arch": arch.to_dict(),
        "ssl_pretext": pretext,
        "preprocess": preprocess.replace(patch_size=patch).to_dict(),
        "patch_size": list(patch),
        "source_sha256": _sources_sha256(images),
        "n_volumes": len(volumes),
        "pretrain": {"steps": int(steps), "seed": int(seed), "batch_size": int(batch_size), "lr": float(lr),
                     "first_loss": float(losses[0]), "final_loss": float(sum(tail) / len(tail)),
                     "seconds": round(time.perf_counter() - t0, 2)},
    }
    metadata.update(extra_metadata or {})
    save_foundation(out, encoder, head, metadata)
    if reporter is not None:
        reporter.log(f"foundation model written to {out}: {len(volumes)} volumes, {steps} steps, SSL loss "
                     f"{losses[0]:.4f} -> {metadata['pretrain']['final_loss']:.4f}", stage="pretrain")
    return metadata


def demo_foundation(cache_dir: Optional[str | Path] = None, reporter=None) -> Path:
    """The demo M0: built once from seeded phantoms by ``demo_recipe()``, then reused.

    Args:
        cache_dir: folder of the cache (default ``$MEDSEQFT_CACHE`` or ``~/.cache/medseqft``).
        reporter: progress while building.

    Returns:
        Path of ``demo_foundation_<recipe hash>.safetensors`` in the cache folder.
    """
    from .data.phantoms import generate_phantoms

    folder = default_cache_dir(cache_dir)
    recipe = demo_recipe()
    name = f"demo_foundation_{recipe_key(recipe)}.safetensors"
    path = folder / name
    if path.is_file():
        return path
    shipped = packaged_foundation_dir() / name
    if shipped.is_file() and os.environ.get("MEDSEQFT_REBUILD_DEMO_M0") != "1":
        return shipped  # built by this same recipe and shipped with the package
    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(path.with_suffix(".lock")):
        if path.is_file():  # another process built it while we waited
            return path
        if reporter is not None:
            reporter.log(f"building the demo foundation model (once; cached as {path})", stage="pretrain")
        ph = recipe["phantoms"]
        with tempfile.TemporaryDirectory(prefix=".phantoms.", dir=folder) as tmp:
            datasets = generate_phantoms(Path(tmp), tasks=ph["tasks"], cases=ph["cases"], seed=ph["seed"],
                                         size=ph["size"], test_cases=ph["test_cases"])
            build_foundation(path, datasets, arch=ArchConfig.from_dict(recipe["arch"]), pretext=recipe["pretext"],
                             steps=recipe["steps"], seed=recipe["seed"], patch_size=recipe["patch_size"],
                             batch_size=recipe["batch_size"], lr=recipe["lr"],
                             preprocess=PreprocessConfig.from_dict(recipe["preprocess"]), reporter=reporter,
                             extra_metadata={"source": "demo", "recipe": recipe, "recipe_key": recipe_key(recipe)})
    return path


def packaged_foundation_dir() -> Path:
    """Where the package ships a demo M0 built by the current recipe (``MedSeqFTLib/resources``).

    Shipping it saves every new machine the pretraining run (minutes on a small CPU). A file
    there is used only when its name carries the current recipe's hash; set
    ``MEDSEQFT_REBUILD_DEMO_M0=1`` to ignore it and pretrain locally instead.
    """
    return Path(__file__).resolve().parent / "resources"


@contextmanager
def _build_lock(lock_path: Path):
    """Exclusive ``flock`` on ``lock_path`` so concurrent first runs build the model once.

    Where ``fcntl`` is missing (Windows) there is no lock: concurrent builds then both
    write the same file atomically, which is wasteful but safe.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
