"""Synthetic T1-weighted brain MR phantoms with small deep structures, as one nnU-Net v2 raw dataset.

The CT phantoms (``phantoms``) label organs of tens to hundreds of cm³; this kind labels four
structures of 0.25-3 cm³ each, to show that a trainer learns small classes. A small head (scalp,
skull, CSF, a folded grey-matter cortex, white matter, ventricles) carries, in each hemisphere:

=====  ============  =====================================================
label  name          shape
=====  ============  =====================================================
1      thalamus      egg-shaped, either side of the third ventricle
2      putamen       flat lens lateral to an (unlabelled) globus pallidus
3      caudate       head beside the frontal horn, body and tail curving back
4      hippocampus   head behind an (unlabelled) amygdala, curved body and tail
=====  ============  =====================================================

Each structure lies in a 1-2.5 mm rim of unlabelled deep grey matter and differs from that rim by
only 5-15 % of the white-grey contrast (thalamus and hippocampus brighter, putamen and caudate
darker), so a threshold finds the rim, not the structure. The image has a smooth multiplicative
bias field, Rician noise and a mild blur. Anatomy is defined in millimetres (LPS) and rendered on
each case's own grid (``phantom_scene.Scene``), so structures keep their physical size whatever
the spacing. Only ``np.random.default_rng([seed, MR_STREAM, case])`` is used: equal seeds write
byte-identical files and case *i* does not depend on how many cases were requested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_write_json
from .phantom_scene import Scene, prepare_folder, write_case

__all__ = ["KIND", "DATASET_NAME", "LABELS", "TISSUES", "T", "MIN_FOV_MM", "MR_STREAM", "render_mr_case",
           "render_mr_anatomy", "t1_intensities", "acquire", "to_sitk_order", "scene_geometry", "generate_mr_phantoms",
           "check_mr_arguments", "label_lut"]

GENERATOR_VERSION = 1
KIND = "mr_brain"
DATASET_NAME = "Dataset101_PhantomBrainMR"
MR_STREAM = 101  # second key of the case generators, apart from the CT tasks' 0, 1, 2, ...
LABELS = ("thalamus", "putamen", "caudate", "hippocampus")  # label values 1..4, largest first
TISSUES = ("air", "scalp", "skull", "csf", "gm", "wm", "deep_grey", "pallidum") + LABELS
T = {name: i for i, name in enumerate(TISSUES)}
# the deep structures reach about 28 mm from the field-of-view centre; a smaller field cuts them
MIN_FOV_MM = 56.0
# sign of each structure's contrast against its deep-grey rim
_CONTRAST_SIGN = {"thalamus": 1.0, "putamen": -1.0, "caudate": -1.0, "hippocampus": 1.0}


def _depth(scene: Scene, centre, radii, wobble: np.ndarray) -> np.ndarray:
    """Approximate depth (mm, positive inside) below the surface of a wobbly axis-aligned ellipsoid."""
    r = np.asarray(radii, dtype=np.float32)
    d = scene.p - np.asarray(centre, dtype=np.float32).reshape(3, 1, 1, 1)
    q = np.sqrt((d[0] / r[0]) ** 2 + (d[1] / r[1]) ** 2 + (d[2] / r[2]) ** 2)
    return (1.0 + wobble - q) * np.float32(r.mean())


def _deep_structures(scene: Scene, rng: np.random.Generator, s: float, side: float, rim_mm: float) -> dict:
    """Masks of one hemisphere's deep structures, their deep-grey rims and the ventricles near them.

    Positions and sizes (mm, LPS: +x left, +y posterior, +z superior) are multiplied by the case
    scale ``s``; every structure moves by up to 1.5 mm on its own.

    Returns:
        ``{"rim": mask, "pallidum": mask, "csf": mask, <label name>: mask}``.
    """
    ell, cap = scene.ellipsoid, scene.capsule

    def at(x, y, z):  # a structure's own position: +-1.5 mm per axis
        return s * np.array([side * x, y, z]) + rng.uniform(-1.5, 1.5, size=3)

    def off(base, x, y, z):  # a point relative to a structure, mirrored with the side
        return base + s * np.array([side * x, y, z])

    def grown(r, by):
        return np.asarray(r, dtype=np.float64) * s + by

    def chain(points, radii, by):  # a curved tube: capsules through ``points``
        m = np.zeros(scene.shape, dtype=bool)
        for a, b, r in zip(points, points[1:], radii):
            m |= cap(a, b, s * r + by)
        return m

    th_c, th_r, th_a = at(7.2, 10.0, 3.0), (4.8, 7.9, 5.8), -side * 0.25
    pu_c, pu_r, pu_a = at(15.0, -1.0, 1.0), (3.5, 8.2, 5.1), -side * 0.15
    pa_c = off(pu_c, -4.2, 1.0, -1.0)  # globus pallidus, medial to the putamen
    ca_c = at(8.5, -8.0, 6.0)  # caudate head; body and tail run back along the ventricle
    ca_path = [ca_c, off(ca_c, 0.0, 2.0, 2.5), off(ca_c, 0.5, 9.0, 5.5), off(ca_c, 1.0, 16.0, 5.0),
               off(ca_c, 2.5, 21.0, 1.0)]
    hi_c = at(17.0, 7.0, -9.0)  # hippocampal head; body and tail curve up and back
    hi_path = [hi_c, off(hi_c, 0.5, 7.0, 2.5), off(hi_c, -1.0, 12.0, 7.0)]
    am_c = off(hi_c, -0.5, -5.5, -1.0)  # amygdala, in front of the hippocampal head

    def caudate(by):
        return ell(ca_c, grown((3.0, 4.2, 4.0), by), 1.5) | chain(ca_path, (1.9, 1.9, 1.5, 1.2), by)

    def hippocampus(by):
        return ell(hi_c, grown((3.0, 3.6, 2.4), by), 1.5) | chain(hi_path, (1.9, 1.4), by)

    out = {}
    out["rim"] = (ell(th_c, grown(th_r, rim_mm), 1.0, th_a) | ell(pu_c, grown(pu_r, rim_mm), 1.0, pu_a)
                  | ell(pa_c, grown((2.0, 4.5, 3.0), rim_mm), 1.0) | caudate(rim_mm) | hippocampus(rim_mm)
                  | ell(am_c, grown((3.0, 3.0, 2.8), 0.0), 1.5))
    out["pallidum"] = ell(pa_c, grown((2.0, 4.5, 3.0), 0.0), 1.0)
    lv = at(4.5, 2.0, 12.0)  # lateral ventricle: body, frontal horn, occipital horn; temporal horn
    out["csf"] = (ell(lv, grown((2.6, 10.0, 3.0), 0.0), 1.0, -side * 0.1)
                  | ell(off(lv, 0.5, -10.0, -3.5), grown((2.4, 4.0, 3.5), 0.0), 1.0)
                  | cap(off(lv, 0.5, 9.0, -1.0), off(lv, 4.5, 18.0, -7.0), 1.6 * s)
                  | cap(off(hi_c, 2.8, -1.5, 3.5), off(hi_c, 2.3, 8.0, 6.5), 0.9 * s))
    out["thalamus"] = ell(th_c, grown(th_r, 0.0), 1.5, th_a)
    out["putamen"] = ell(pu_c, grown(pu_r, 0.0), 1.5, pu_a)
    out["caudate"] = caudate(0.0)
    out["hippocampus"] = hippocampus(0.0)
    return out


def render_mr_case(rng: np.random.Generator, size: int = 64, spacing_mm: float = 1.5):
    """Draw one T1-like head.

    Args:
        rng: the case's generator (all randomness comes from it).
        size: nominal voxels per axis at ``spacing_mm``; the field of view is ``size * spacing_mm`` mm.
        spacing_mm: nominal voxel size; a case uses x0.9-1.1 in-plane and x0.95-1.35 between slices.

    Returns:
        ``(image, tissue, geometry)``: ``image`` int16 (arbitrary units, white matter about 640
        before the bias field) and ``tissue`` uint8 (ids of ``TISSUES``) arrays in SimpleITK order
        (Z, Y, X), and a dict with ``origin``, ``spacing``, ``direction`` (LPS, row-major).
    """
    tissue, scene = render_mr_anatomy(rng, size, spacing_mm)
    image = t1_intensities(rng, tissue, scene)
    return to_sitk_order(image), to_sitk_order(tissue), scene_geometry(scene)


def to_sitk_order(arr: np.ndarray) -> np.ndarray:
    """(X, Y, Z) -> SimpleITK's (Z, Y, X), contiguous."""
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


def scene_geometry(scene: Scene) -> dict:
    """``write_case``'s grid dict (``origin``, ``spacing``, ``direction`` LPS row-major) of ``scene``."""
    return {"origin": tuple(float(v) for v in scene.origin), "spacing": tuple(float(v) for v in scene.spacing),
            "direction": tuple(float(v) for v in scene.direction.ravel())}


def render_mr_anatomy(rng: np.random.Generator, size: int = 64, spacing_mm: float = 1.5) -> tuple:
    """The head of ``render_mr_case`` without its contrast: ``(tissue, scene)``, ``tissue`` (X, Y, Z)
    uint8 ids of ``TISSUES`` on ``scene``'s grid. A contrast (``t1_intensities``, or the T2 of
    ``phantoms_multimodal``) draws from the same ``rng`` afterwards."""
    scene = Scene(rng, size, spacing_mm, in_plane=(0.9, 1.1), slices=(0.95, 1.35), centre_mm=4.0,
                  warp_mm=1.5, warp_wavelength=(50, 120), bump=0.04, bump_wavelength=(25, 50))
    s = rng.uniform(0.9, 1.1)  # one scale for the whole head: structures keep their size order
    head_r = s * np.array([38.0, 44.0, 38.0]) * rng.uniform(0.96, 1.04, size=3)
    scalp_mm, skull_mm = rng.uniform(2.5, 3.5), rng.uniform(2.5, 4)
    csf_mm, cortex_mm = rng.uniform(1, 2), rng.uniform(2.5, 3.5)
    tissue = np.full(scene.shape, T["air"], dtype=np.uint8)

    # head layers, concentric below one wobbly surface; the cortex folds into gyri and sulci
    head = _depth(scene, (0, 0, 0), head_r, scene.bumps)
    brain = head - (scalp_mm + skull_mm + csf_mm)
    fold = scene.waves(8, (9, 18), 1.0)
    tissue[head > 0] = T["scalp"]
    tissue[head > scalp_mm] = T["skull"]
    tissue[head > scalp_mm + skull_mm] = T["csf"]
    tissue[brain > 0] = T["gm"]
    tissue[brain > np.maximum(cortex_mm + 3.0 * fold, 1.5)] = T["wm"]
    tissue[(brain > 0) & (fold > 0.4) & (brain < cortex_mm + 3.0 * fold - 2.0)] = T["csf"]  # sulci
    x, z = np.abs(scene.p[0]), scene.p[2]
    fissure = (brain > 0) & (z > 17.0 * s)  # interhemispheric fissure lined by cortex
    tissue[fissure & (x < 3.0)] = T["gm"]
    tissue[fissure & (x < 0.8)] = T["csf"]

    # deep grey rims, globus pallidus, ventricles, then the labelled structures on top
    rim_mm = rng.uniform(1.0, 2.5)
    sides = [_deep_structures(scene, rng, s, side, rim_mm) for side in (-1.0, 1.0)]
    third = scene.ellipsoid(s * np.array([0.0, 9.0, 3.0]), s * np.array([0.9, 7.0, 5.0]), 0.5)
    for name in ("rim", "pallidum", "csf") + LABELS:
        mask = sides[0][name] | sides[1][name] | (third if name == "csf" else False)
        tissue[mask] = T["deep_grey" if name == "rim" else name]

    return tissue, scene


def t1_intensities(rng: np.random.Generator, tissue: np.ndarray, scene: Scene) -> np.ndarray:
    """T1 contrast of an (X, Y, Z) tissue map, then ``acquire``; int16 >= 0, (X, Y, Z)."""
    wm, gm = 640.0 * rng.uniform(0.97, 1.03), 420.0 * rng.uniform(0.96, 1.04)
    delta = wm - gm
    lut = np.zeros(len(TISSUES), dtype=np.float32)
    lut[T["scalp"]], lut[T["skull"]], lut[T["csf"]] = rng.uniform(520, 600), rng.uniform(55, 85), rng.uniform(115, 145)
    lut[T["gm"]], lut[T["wm"]] = gm, wm
    lut[T["deep_grey"]] = wm - rng.uniform(0.4, 0.55) * delta
    lut[T["pallidum"]] = lut[T["deep_grey"]] + rng.uniform(0.2, 0.3) * delta
    for name in LABELS:
        lut[T[name]] = lut[T["deep_grey"]] + _CONTRAST_SIGN[name] * rng.uniform(0.05, 0.15) * delta
    return acquire(rng, lut[tissue], scene, wm)


def acquire(rng: np.random.Generator, image: np.ndarray, scene: Scene, reference: float) -> np.ndarray:
    """Blur (0.5-0.8 mm), smooth bias field (up to ~x1.4 across the brain), Rician noise of 1.5-3 % of
    ``reference`` (the white-matter level), scanner gain; (X, Y, Z) float -> int16 >= 0."""
    from scipy.ndimage import gaussian_filter

    wm = reference
    sigma_mm = rng.uniform(0.5, 0.8)
    image = gaussian_filter(image, sigma=[sigma_mm / sp for sp in scene.spacing], mode="nearest")
    image *= np.exp(scene.waves(3, (150, 350), rng.uniform(0.08, 0.2)))  # receive-coil bias field
    noise = np.float32(rng.uniform(0.015, 0.03) * wm)
    real = image + noise * rng.standard_normal(size=image.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(size=image.shape, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag) * np.float32(rng.uniform(0.85, 1.15))  # magnitude, scanner gain
    return np.clip(np.rint(image), 0, 32767).astype(np.int16)


def check_mr_arguments(cases: int, test_cases: int, size: int, spacing_mm: float) -> None:
    """Refuse arguments ``generate_mr_phantoms`` cannot honour.

    Raises:
        InputError: an argument out of range, or a field of view under ``MIN_FOV_MM`` (it would
            cut the deep structures), naming the CLI option.
    """
    checks = [(cases >= 1, "--cases", f"must be >= 1, got {cases}"),
              (test_cases >= 0, "test_cases", f"must be >= 0, got {test_cases}"),
              (16 <= size <= 256, "--size", f"must lie in [16, 256], got {size}"),
              (0.5 <= spacing_mm <= 4.0, "--spacing", f"must lie in [0.5, 4] mm, got {spacing_mm}"),
              (size * spacing_mm >= MIN_FOV_MM, "--size",
               f"field of view {size} x {spacing_mm} mm = {size * spacing_mm:g} mm is below {MIN_FOV_MM:g} mm "
               f"and would cut the deep structures; use --size >= {int(np.ceil(MIN_FOV_MM / spacing_mm))}")]
    for ok, where, problem in checks:
        if not ok:
            raise InputError(where, problem)


def label_lut() -> np.ndarray:
    """Tissue id -> label value (``LABELS`` are 1..4, every other tissue 0), uint8."""
    lut = np.zeros(len(TISSUES), dtype=np.uint8)
    for value, name in enumerate(LABELS, start=1):
        lut[T[name]] = value
    return lut


def generate_mr_phantoms(out: Path, cases: int = 10, seed: int = 0, size: int = 64, spacing_mm: float = 1.5,
                         test_cases: int = 2, progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """Write ``out/Dataset101_PhantomBrainMR``: T1-like heads labelled with four small deep structures.

    The folder holds ``dataset.json`` (channel ``"MR"``, labels background 0, thalamus 1,
    putamen 2, caudate 3, hippocampus 4, and a ``"phantom"`` block), ``imagesTr/brain_NNN_0000.nii.gz``
    (int16), ``labelsTr/brain_NNN.nii.gz`` (uint8, same grid) and ``imagesTs/`` (unlabelled cases).
    An earlier generated dataset in that folder is replaced; any other folder is refused.

    Args:
        out: parent folder (created).
        cases: labelled training cases.
        seed: everything derives from it; equal seeds give byte-identical files.
        size: nominal voxels per axis at ``spacing_mm``; the field of view is ``size * spacing_mm`` mm.
        spacing_mm: nominal spacing (mm); each case varies it (in-plane x0.9-1.1, slices x0.95-1.35).
        test_cases: unlabelled cases in ``imagesTs``.
        progress: called as ``progress(done, total, message)`` after every case.

    Returns:
        The dataset folder.

    Raises:
        InputError: an argument out of range (including a field of view under ``MIN_FOV_MM``,
            which would cut the deep structures), or an output folder that holds other data.
    """
    check_mr_arguments(cases, test_cases, size, spacing_mm)
    folder = Path(out) / DATASET_NAME
    prepare_folder(folder)
    total = cases + test_cases
    lut = label_lut()
    for i in range(total):
        image, tissue, geometry = render_mr_case(np.random.default_rng([seed, MR_STREAM, i]), size, spacing_mm)
        case_id = f"brain_{i:03d}"
        if i < cases:
            write_case(image, lut[tissue], geometry, folder / "imagesTr" / f"{case_id}_0000.nii.gz",
                       folder / "labelsTr" / f"{case_id}.nii.gz")
        else:
            write_case(image, None, geometry, folder / "imagesTs" / f"{case_id}_0000.nii.gz", None)
        if progress is not None:
            progress(i + 1, total, f"{folder.name}: {case_id}")
    atomic_write_json(folder / "dataset.json", {
        "name": "PhantomBrainMR",
        "description": "Synthetic T1-weighted brain MR phantoms with small deep structures, MedSeqFT test data",
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, **{name: v for v, name in enumerate(LABELS, start=1)}},
        "numTraining": cases,
        "file_ending": ".nii.gz",
        "licence": "CC0-1.0 (synthetic)",
        "phantom": {"kind": KIND, "generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
                    "spacing_mm": spacing_mm, "test_cases": test_cases},
    })
    return folder
