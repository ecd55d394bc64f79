"""Segment volumes with a finished task's model, back in each input's own geometry.

Pipeline per case: preprocess exactly as in training (``data.preprocess.prepare_image_for_inference``),
MONAI ``sliding_window_inference`` (roi = the workspace's training patch size, overlap 0.5,
Gaussian blending of softmax probabilities), argmax, class index -> label value, then
``data.preprocess.to_original_space`` so the label volume has the input's origin, spacing,
direction and size. A sidecar ``<name>.labels.json`` ({label name: value}) goes next to each
output; NRRD outputs also carry Slicer segmentation metadata (``Segment<i>_*`` keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..devices import resolve_device
from ..errors import InputError
from ..io.atomic import atomic_write_json
from .loader import class_values, load_task_model, require_finished

__all__ = ["sliding_window_predict", "sliding_window_probabilities", "postprocess_classes", "prepare_case", "predict_prepared", "predict_case", "predict_files", "parse_image_args", "output_name",
           "write_prediction", "resolve_device"]

# Slicer's default-ish distinct colours for segments 1..n (RGB in [0, 1])
_COLOURS = [(0.5, 0.68, 0.5), (0.94, 0.84, 0.57), (0.69, 0.48, 0.4), (0.44, 0.72, 0.82), (0.85, 0.4, 0.41),
            (0.56, 0.47, 0.73), (0.89, 0.51, 0.23), (0.39, 0.56, 0.27)]


MIRRORINGS = ((), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4))  # tensor dims of (B, C, X, Y, Z)


def sliding_window_probabilities(model, image: np.ndarray, patch_size: Sequence[int], device=None,
                                 overlap: float = 0.5, sw_batch_size: int = 1, mirror: bool = False,
                                 amp: bool = False):
    """Softmax probabilities of one preprocessed image (MONAI Gaussian sliding window).

    Args:
        model: a ``SegNet`` (any module mapping (B, C, x, y, z) -> (B, n_classes, x, y, z)).
        image: (C, X, Y, Z) float32 preprocessed image.
        patch_size: roi (x, y, z); each must be divisible by the model's size divisor.
        device: torch device of the model (``None``: where its parameters are).
        overlap: window overlap fraction.
        sw_batch_size: windows per forward pass.
        mirror: average the softmax over the 8 mirrorings of each window (nnU-Net's test-time
            augmentation; 8x the time).
        amp: run the network under autocast (CUDA only; the blending stays fp32).

    Returns:
        float32 Tensor (n_classes, X, Y, Z) on ``device``.

    Raises:
        ValueError: ``image`` is not 4D.
    """
    import contextlib

    import torch
    from monai.inferers import sliding_window_inference

    if image.ndim != 4:
        raise ValueError(f"expected a (C, X, Y, Z) image, got shape {image.shape}")
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(device)
    cast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
            if amp and getattr(device, "type", "") == "cuda" else contextlib.nullcontext())

    def predictor(patch):
        with cast:
            if not mirror:
                return torch.softmax(model(patch).float(), dim=1)
            total = 0.0
            for dims in MIRRORINGS:
                flipped = torch.flip(patch, dims) if dims else patch
                out = torch.softmax(model(flipped).float(), dim=1)
                total = total + (torch.flip(out, dims) if dims else out)
            return total / len(MIRRORINGS)

    with torch.inference_mode():
        probs = sliding_window_inference(x, roi_size=tuple(int(p) for p in patch_size), sw_batch_size=sw_batch_size,
                                         predictor=predictor, overlap=overlap, mode="gaussian")
    return probs[0]


def sliding_window_predict(model, image: np.ndarray, patch_size: Sequence[int], device=None,
                           overlap: float = 0.5, sw_batch_size: int = 1, mirror: bool = False,
                           amp: bool = False) -> np.ndarray:
    """Class index per voxel of one preprocessed image: argmax of ``sliding_window_probabilities``.

    Returns:
        (X, Y, Z) uint8 class indices.
    """
    import torch

    probs = sliding_window_probabilities(model, image, patch_size, device, overlap, sw_batch_size, mirror, amp)
    return probs.argmax(0).to(torch.uint8).cpu().numpy()


def postprocess_classes(ws, name: str, cfg) -> list[int]:
    """Class indices whose largest connected component alone is kept at inference.

    ``recipe.keep_largest``: ``"off"`` none, ``"on"`` every foreground class, ``"auto"`` the
    classes for which it raised Dice on the training cases (decided after training, recorded
    in the task model's ``record.json`` as ``postprocess.keep_largest``).
    """
    mode = cfg.recipe.keep_largest
    if mode == "off":
        return []
    if mode == "on":
        return list(range(1, len(ws.labels(name))))
    from .loader import read_record

    return [int(c) for c in (read_record(ws, name).get("postprocess") or {}).get("keep_largest", [])]


def prepare_case(image_paths: Sequence[Path], ws, task_record: dict):
    """Read and preprocess one case exactly as training does.

    Returns:
        ``(array (C, X, Y, Z) float32, prepared RAS affine, reference sitk.Image)``; the
        reference is the first channel file, whose grid the prediction is written on.

    Raises:
        InputError: an unreadable image or channel files whose grids differ.
    """
    from ..data.imageio import read_image
    from ..data.modality import preprocessing_modality
    from ..data.preprocess import prepare_image_for_inference

    paths = [Path(p) for p in image_paths]
    reference = read_image(paths[0])
    array, affine = prepare_image_for_inference(paths, ws.task_config(task_record["name"]).preprocess,
                                                preprocessing_modality(task_record))
    return array, affine, reference


def predict_prepared(model, prepared, ws, task_record: dict, device=None, keep_largest=None):
    """Segment a ``prepare_case`` result; returns a uint8 ``sitk.Image`` of label values on the reference grid.

    ``keep_largest``: class indices reduced to their largest connected component; ``None`` =
    the task's recorded decision (``postprocess_classes``).
    """
    from ..data.preprocess import to_original_space

    from .postprocess import keep_largest_components

    array, affine, reference = prepared
    cfg = ws.task_config(task_record["name"])
    cuda = getattr(device, "type", "cpu") == "cuda"
    mirror = cfg.recipe.tta_mirror if cfg.recipe.tta_mirror is not None else cuda
    indices = sliding_window_predict(model, array, cfg.preprocess.patch_size, device=device,
                                     overlap=float(cfg.recipe.sw_overlap), sw_batch_size=4 if cuda else 1,
                                     mirror=bool(mirror), amp=cfg.recipe.amp != "off")
    if keep_largest is None:
        keep_largest = postprocess_classes(ws, task_record["name"], cfg)
    indices = keep_largest_components(indices, keep_largest)
    lut = np.asarray(class_values(task_record["labels"]), dtype=np.uint8)
    values = lut[np.minimum(indices, len(lut) - 1)]
    return to_original_space(values[None], affine, reference)


def predict_case(model, image_paths: Sequence[Path], ws, task_record: dict, device=None):
    """Segment one case given by its channel files; the result lies on the input's own grid.

    Args:
        model: the task's ``SegNet`` (already on ``device``).
        image_paths: the case's channel files, in channel order.
        ws: the ``Workspace`` (its preprocessing and patch size are used).
        task_record: the task's ``task.json`` (labels, modality).

    Returns:
        ``sitk.Image`` of label values (uint8) with the first channel file's origin, spacing,
        direction and size.

    Raises:
        InputError: an unreadable image or channel files whose grids differ.
    """
    return predict_prepared(model, prepare_case(image_paths, ws, task_record), ws, task_record, device=device)


def parse_image_args(images: Sequence[str], n_channels: int) -> list[list[Path]]:
    """Turn IMAGE arguments into per-case channel lists.

    Single-channel tasks take one file per argument; a task with ``n_channels > 1`` takes
    each case as its channel files joined by commas (``t1.nii.gz,t2.nii.gz``).

    Raises:
        InputError: no images, a wrong number of channel files, or a missing file.
    """
    if not images:
        raise InputError("IMAGE", "give at least one image file")
    cases = []
    for arg in images:
        parts = [p for p in str(arg).split(",") if p] if n_channels > 1 else [str(arg)]
        if len(parts) != n_channels:
            raise InputError(arg, f"the task's model takes {n_channels} channel(s): give them as one comma-joined "
                                  f"argument (got {len(parts)})")
        paths = [Path(p) for p in parts]
        for p in paths:
            if not p.is_file():
                raise InputError(p, "image file not found")
        cases.append(paths)
    return cases


def output_name(image_path: Path, suffix: Optional[str] = None) -> str:
    """Output file name of a prediction: the input's case name plus ``suffix`` (default: the input's).

    A trailing nnU-Net channel tag (``_0000``) is dropped from the case name.
    """
    from ..data.imageio import image_suffix

    in_suffix = image_suffix(image_path) or ".nii.gz"
    stem = Path(image_path).name[: -len(in_suffix)]
    if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit():
        stem = stem[:-5]
    suffix = suffix or in_suffix
    return stem + (suffix if suffix.startswith(".") else "." + suffix)


def _slicer_segment_metadata(img, labels: dict) -> None:
    """Add the ``Segment<i>_*`` NRRD keys with which Slicer loads a labelmap as named segments."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(img)  # (Z, Y, X)
    fg = sorted(((int(v), n) for n, v in labels.items() if int(v) != 0))
    for i, (value, name) in enumerate(fg):
        zyx = np.nonzero(arr == value)
        if zyx[0].size:
            extent = f"{zyx[2].min()} {zyx[2].max()} {zyx[1].min()} {zyx[1].max()} {zyx[0].min()} {zyx[0].max()}"
        else:
            extent = "0 -1 0 -1 0 -1"
        colour = _COLOURS[i % len(_COLOURS)]
        for key, val in {"ID": f"Segment_{value}", "Name": name, "NameAutoGenerated": "0",
                         "Color": " ".join(f"{c:.4f}" for c in colour), "ColorAutoGenerated": "0",
                         "LabelValue": str(value), "Layer": "0", "Extent": extent,
                         "Tags": "Segmentation.Status:inprogress|"}.items():
            img.SetMetaData(f"Segment{i}_{key}", val)
    img.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    img.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    img.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")


def write_prediction(img, out_path: Path, labels: dict) -> Path:
    """Write a label volume plus its ``<name>.labels.json`` sidecar; NRRD gets Slicer segment keys.

    Returns:
        The label volume's path.

    Raises:
        InputError: an unsupported output suffix.
    """
    from ..data.imageio import image_suffix, write_image

    out_path = Path(out_path)
    suffix = image_suffix(out_path)
    if suffix == ".nrrd":
        _slicer_segment_metadata(img, labels)
    write_image(img, out_path)
    stem = out_path.name[: -len(suffix)] if suffix else out_path.stem
    if stem.endswith(".seg"):  # Slicer's case.seg.nrrd -> case.labels.json
        stem = stem[: -len(".seg")]
    atomic_write_json(out_path.with_name(stem + ".labels.json"), {n: int(v) for n, v in labels.items()})
    return out_path


def predict_files(ws, name: str, images: Sequence[Sequence[Path]], out_dir: Path, reporter=None,
                  suffix: Optional[str] = None, device: str = "auto", transductive: bool = False) -> list[Path]:
    """``medseqft predict``: segment each case with task ``name``'s model into ``out_dir``.

    Args:
        ws: the ``Workspace``.
        name: a finished task.
        images: per case, its channel files (see ``parse_image_args``).
        out_dir: created if missing.
        reporter: progress as stage ``"predict"``.
        suffix: output format (``".nii.gz"``, ``".nrrd"``, ``".seg.nrrd"``, ``".mha"``); default: the input's.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        transductive: first adapt an adapter task's modules on these images with its size prior
            (``adapters.transductive``; in memory, the workspace is not changed).

    Returns:
        The written label volumes, one per case.

    Raises:
        InputError: unknown or unfinished task, unreadable image, two inputs with the same
            output name.
    """
    record = require_finished(ws, name)
    dev = resolve_device(device)
    names = [output_name(Path(case[0]), suffix) for case in images]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError("IMAGE", f"several inputs would write the same output {dup[0]}; predict them separately")
    model = load_task_model(ws, name).to(dev)
    prepared = None
    if transductive:
        from ..adapters.transductive import adapt_for_volumes

        prepared = [prepare_case(case, ws, record) for case in images]
        info = adapt_for_volumes(ws, name, model, [p[0] for p in prepared], dev, reporter)
        if reporter is not None:
            reporter.log(f"{name}: transductive adaptation ({info['steps']} steps): predicted proportions "
                         f"{info['before']} -> {info['after']}, prior {info['target']}", task=name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (case, out_name) in enumerate(zip(images, names), start=1):
        if reporter is not None:
            reporter.check_cancel()
        if prepared is not None:
            label_img = predict_prepared(model, prepared[i - 1], ws, record, device=dev)
        else:
            label_img = predict_case(model, case, ws, record, device=dev)
        written.append(write_prediction(label_img, out_dir / out_name, record["labels"]))
        if reporter is not None:
            reporter.progress("predict", name, i, len(images), message=str(written[-1]))
    return written
