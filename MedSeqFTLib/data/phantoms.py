"""Synthetic abdominal CT phantoms, written as nnU-Net v2 raw datasets.

Every case is drawn from one anatomy family (body, fat, muscle, spine, liver, spleen, two
kidneys, pancreas, stomach, aorta with branches, IVC, bowel) and rendered on its own scanner grid
(spacing, orientation, field of view), so that physically identical anatomy arrives with
different voxel layouts, as real multi-centre data does. Tasks differ only in what is labelled:

=====  =========  ==========================================
task   name       labels (besides background = 0)
=====  =========  ==========================================
1      Liver      liver = 1, liver_tumour = 2
2      Kidney     kidney = 1, kidney_tumour = 2
3      Pancreas   pancreas = 1, pancreas_tumour = 2
4      Vessels    aorta = 1, branches = 2
5      Spleen     spleen = 1
=====  =========  ==========================================

Task 6 onwards repeats the list with fresh anatomy. The generator uses only
``np.random.default_rng`` seeded from ``(seed, task, case)``, so a rerun writes byte-identical
files and case *i* of task *t* does not depend on how many tasks or cases were requested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_write_json
from .phantom_scene import Scene, prepare_folder, write_case

__all__ = ["TASKS", "PhantomTask", "generate_phantoms", "render_case", "task_spec", "task_name", "task_label",
           "task_labels", "check_arguments", "HU", "T", "TISSUES"]

GENERATOR_VERSION = 2
# lesion radius range per organ: about a third of the organ's smallest half-axis at most, so a
# lesion never replaces most of a thin organ (the pancreas is ~15-25 mm thick)
LESION_RADIUS_MM = {"liver": (8.0, 16.0), "kidney": (6.0, 12.0), "pancreas": (4.0, 8.0), "spleen": (6.0, 12.0)}

# nominal attenuation (HU) of each tissue; a case jitters them a little (contrast timing)
HU = {
    "air": -1000.0, "fat": -100.0, "muscle": 40.0, "viscera": 25.0, "gas": -900.0,
    "bone": 700.0, "disc": 90.0, "liver": 60.0, "spleen": 50.0, "kidney": 35.0,
    "pancreas": 45.0, "stomach": 15.0, "aorta": 180.0, "branch": 180.0, "ivc": 110.0,
}
# tissue ids in the rendered tissue map; tumours get their own id per organ
TISSUES = ("air", "fat", "muscle", "viscera", "gas", "bone", "disc", "liver", "spleen", "kidney",
           "pancreas", "stomach", "aorta", "branch", "ivc",
           "liver_tumour", "kidney_tumour", "pancreas_tumour", "spleen_tumour")
T = {name: i for i, name in enumerate(TISSUES)}


@dataclass(frozen=True)
class PhantomTask:
    """One phantom task: its dataset name, the organ that carries lesions, what is labelled."""

    name: str
    organ: Optional[str]
    labels: tuple  # ((label name, (tissue names...)), ...) in label-value order


TASKS = (
    PhantomTask("Liver", "liver", (("liver", ("liver",)), ("liver_tumour", ("liver_tumour",)))),
    PhantomTask("Kidney", "kidney", (("kidney", ("kidney",)), ("kidney_tumour", ("kidney_tumour",)))),
    PhantomTask("Pancreas", "pancreas", (("pancreas", ("pancreas",)), ("pancreas_tumour", ("pancreas_tumour",)))),
    PhantomTask("Vessels", None, (("aorta", ("aorta",)), ("branches", ("branch",)))),
    PhantomTask("Spleen", "spleen", (("spleen", ("spleen", "spleen_tumour")),)),
)


def task_spec(index: int) -> PhantomTask:
    """The task at 0-based ``index``; the five tasks repeat (with fresh anatomy) after the fifth."""
    return TASKS[index % len(TASKS)]


def task_name(index: int) -> str:
    """``"Liver"`` for task 0, ``"Liver2"`` for task 5 (the second round of the five kinds), ..."""
    round_ = index // len(TASKS)
    spec = task_spec(index)
    return spec.name if round_ == 0 else f"{spec.name}{round_ + 1}"


def task_labels(spec: PhantomTask) -> dict:
    """The ``dataset.json`` labels of ``spec``: ``{"background": 0, <label>: 1, ...}``."""
    return {"background": 0, **{lab: v for v, (lab, _) in enumerate(spec.labels, start=1)}}


def task_label(spec: PhantomTask, tissue: np.ndarray) -> np.ndarray:
    """The label map of ``spec`` from a ``render_case`` tissue map (same shape, uint8)."""
    label = np.zeros_like(tissue)
    for value, (_, names) in enumerate(spec.labels, start=1):
        label[np.isin(tissue, [T[n] for n in names])] = value
    return label


# ---------------------------------------------------------------- one case

def render_case(rng: np.random.Generator, lesion_organ: Optional[str], size: int = 64, spacing_mm: float = 3.0):
    """Draw one phantom.

    Args:
        rng: the case's generator (all randomness comes from it).
        lesion_organ: organ that almost always carries 1-3 tumours (others, and all organs
            when ``None``: 20% chance).
        size: nominal voxels per axis at ``spacing_mm``.
        spacing_mm: nominal voxel size; the case's spacing varies around it.

    Returns:
        ``(hu, tissue, geometry)``: ``hu`` int16 and ``tissue`` uint8 arrays in SimpleITK order
        (Z, Y, X), and a dict with ``origin``, ``spacing``, ``direction`` (LPS, row-major).
    """
    scene = Scene(rng, size, spacing_mm)
    ell, cap = scene.ellipsoid, scene.capsule
    jit = lambda mm: rng.uniform(-mm, mm, size=3)  # noqa: E731
    sc = lambda lo=0.85, hi=1.15: rng.uniform(lo, hi)  # noqa: E731
    hu_case = {k: v + (rng.uniform(-8, 8) if v > -500 else 0.0) for k, v in HU.items()}
    hu_case["aorta"] = hu_case["branch"] = rng.uniform(150, 230)

    tissue = np.full(scene.shape, T["air"], dtype=np.uint8)
    hu = np.full(scene.shape, HU["air"], dtype=np.float32)

    def paint(mask, name, value=None):
        tissue[mask] = T[name]
        hu[mask] = hu_case.get(name, 0.0) if value is None else value

    # body: subcutaneous fat, muscle wall, abdominal cavity of bowel/visceral fat/gas
    body_r = np.array([80.0, 60.0, 210.0]) * np.array([sc(0.92, 1.08), sc(0.92, 1.08), 1.0])
    fat_mm, wall_mm = rng.uniform(6, 14), rng.uniform(5, 9)
    paint(ell((0, 0, 0), body_r, 0.2), "fat")
    paint(ell((0, 0, 0), body_r - fat_mm, 0.2), "muscle")
    cavity = ell((0, -4, 0), body_r - fat_mm - wall_mm - (0, 4, 0), 0.2)
    texture = scene.waves(6, (18, 40), 1.0)
    paint(cavity, "viscera")
    paint(cavity & (texture > 0.35), "fat")
    paint(cavity & (texture < -1.35), "gas")
    stomach_c = np.array([28.0, -30.0, 55.0]) + jit(6)
    paint(ell(stomach_c, np.array([24.0, 16.0, 24.0]) * sc(), 1.0, 0.5) & cavity, "stomach")
    paint(ell(stomach_c + (0, -8, 12), (16, 8, 8), 1.0, 0.5) & cavity, "gas")

    # organs; each tumour-carrying organ can get lesions painted right after it
    lesion_p = {o: (0.9 if o == lesion_organ else 0.2) for o in ("liver", "kidney", "pancreas", "spleen")}

    def lesions(organ_mask, organ):
        if rng.random() >= lesion_p[organ] or organ_mask.sum() < 20:
            return
        inside = np.flatnonzero(organ_mask)
        for _ in range(int(rng.integers(1, 4))):
            centre = scene.p.reshape(3, -1)[:, inside[rng.integers(len(inside))]]
            radii = rng.uniform(*LESION_RADIUS_MM[organ]) * np.array([sc(0.8, 1.2), sc(0.8, 1.2), sc(0.8, 1.2)])
            # mostly hypo-dense, sometimes hyper-dense (-60..-30 or +30..+50 HU against the organ,
            # as metastases and renal or pancreatic tumours show in portal-venous CT). Version 1
            # used -35..-15 / +15..+30 HU and 4-11 mm: at 3 mm voxels and 10-20 HU noise that is a
            # contrast-to-noise ratio of 0.25-0.9 per voxel on 20-180 voxels, below what a
            # trainer learns in the demo's budget (docs/phantoms.md)
            delta = rng.uniform(-60, -30) if rng.random() < 0.8 else rng.uniform(30, 50)
            paint(ell(centre, radii, 0.0) & organ_mask, organ + "_tumour", hu_case[organ] + delta)

    kidneys = np.zeros(scene.shape, dtype=bool)
    for side in (-1, 1):
        c = np.array([side * 40.0, 32.0, -5.0 if side > 0 else -15.0]) + jit(5)
        r = np.array([14.0, 12.0, 28.0]) * sc()
        paint(ell(c, r * 1.35, 0.0), "fat")  # perirenal fat
        k = ell(c, r, 0.5, side * 0.35)
        paint(k, "kidney")
        paint(ell(c - (side * r[0] * 0.75, 0, 0), r * (0.45, 0.4, 0.45), 0.0) & k, "fat")  # sinus
        kidneys |= tissue == T["kidney"]
    lesions(kidneys & (tissue == T["kidney"]), "kidney")

    liver_c = np.array([-38.0, -6.0, 42.0]) + jit(6)
    ls = sc()
    liver = ell(liver_c, np.array([36.0, 40.0, 44.0]) * ls, 1.0, -0.2)
    liver |= ell(liver_c + (38, -22, 10), np.array([30.0, 14.0, 28.0]) * ls, 1.0, 0.3)  # left lobe
    paint(liver & cavity, "liver")
    lesions(tissue == T["liver"], "liver")

    spleen_c = np.array([40.0, 15.0, 48.0]) + jit(5)
    paint(ell(spleen_c, np.array([12.0, 20.0, 28.0]) * sc(), 1.0, -0.6) & cavity, "spleen")
    lesions(tissue == T["spleen"], "spleen")

    pc = np.array([0.0, -10.0, 18.0]) + jit(4)
    paint(ell(pc + (-8, -2, 0), (34, 16, 15), 0.0) & cavity, "fat")  # peripancreatic fat
    ps = sc()
    pancreas = ell(pc + (-20, -4, -6), np.array([12.0, 11.0, 13.0]) * ps, 0.5)  # head
    pancreas |= ell(pc + (2, -2, 0), np.array([18.0, 7.0, 8.0]) * ps, 0.5, 0.2)  # body
    pancreas |= ell(pc + (24, 6, 6), np.array([14.0, 6.0, 7.0]) * ps, 0.5, 0.5)  # tail
    paint(pancreas & cavity, "pancreas")
    lesions(tissue == T["pancreas"], "pancreas")

    # vessels: aorta with iliac, renal, coeliac and mesenteric branches; IVC (not labelled)
    ax, ay = 8.0 + rng.uniform(-3, 3), 6.0 + rng.uniform(-2, 2)
    top, bif = 110.0, -70.0 + rng.uniform(-8, 8)
    ar, br = rng.uniform(7.0, 9.5), rng.uniform(3.5, 5.0)
    paint(cap((-18, 10, -110), (-18, 10, 110), rng.uniform(8, 10)), "ivc")
    for side in (-1, 1):
        paint(cap((ax, ay, bif), (ax + side * 35, ay - 4, bif - 45), br * 1.3), "branch")  # iliac
        paint(cap((ax, ay, -8), (side * 30.0, 28.0, -8 + rng.uniform(-6, 6)), br), "branch")  # renal
    paint(cap((ax, ay, 48), (ax - 6, ay - 30, 55), br), "branch")  # coeliac trunk
    paint(cap((ax, ay, 34), (ax + 2, ay - 32, 0), br), "branch")  # superior mesenteric
    paint(cap((ax, ay, bif), (ax, ay, top), ar), "aorta")

    # spine: vertebral bodies with discs every ~28 mm, posterior elements
    sx, sy = rng.uniform(-2, 2), 32.0 + rng.uniform(-2, 2)
    paint(cap((sx, sy + 14, -120), (sx, sy + 14, 120), 5.5), "bone")
    vert = cap((sx, sy, -120), (sx, sy, 120), rng.uniform(10, 12))
    paint(vert, "bone")
    paint(vert & (np.mod(scene.p[2] + rng.uniform(0, 28), 28.0) < 5.0), "disc")

    hu = _blur_and_noise(rng, hu, scene.spacing)
    geometry = {"origin": tuple(float(v) for v in scene.origin), "spacing": tuple(float(v) for v in scene.spacing),
                "direction": tuple(float(v) for v in scene.direction.ravel())}
    # (X, Y, Z) -> SimpleITK's (Z, Y, X)
    return np.ascontiguousarray(hu.transpose(2, 1, 0)), np.ascontiguousarray(tissue.transpose(2, 1, 0)), geometry


def _blur_and_noise(rng, hu, spacing) -> np.ndarray:
    """Scanner blur (~1-1.5 mm sigma), Gaussian noise (10-20 HU), integer HU clipped to 12 bits."""
    from scipy.ndimage import gaussian_filter

    sigma_mm = rng.uniform(1.0, 1.5)
    hu = gaussian_filter(hu, sigma=[sigma_mm / s for s in spacing], mode="nearest")
    hu += rng.standard_normal(size=hu.shape, dtype=np.float32) * np.float32(rng.uniform(10.0, 20.0))
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


# ---------------------------------------------------------------- datasets

def check_arguments(cases: int, test_cases: int, size: int, spacing_mm: float) -> None:
    """Refuse case counts and grids the CT generator cannot honour.

    Raises:
        InputError: an argument out of range, naming the CLI option.
    """
    checks = [(cases >= 1, "--cases", f"must be >= 1, got {cases}"),
              (test_cases >= 0, "test_cases", f"must be >= 0, got {test_cases}"),
              (16 <= size <= 256, "--size", f"must lie in [16, 256], got {size}"),
              (0.5 <= spacing_mm <= 10.0, "--spacing", f"must lie in [0.5, 10] mm, got {spacing_mm}")]
    for ok, where, problem in checks:
        if not ok:
            raise InputError(where, problem)


def generate_phantoms(out: Path, tasks: int = 3, cases: int = 12, seed: int = 0, size: int = 64,
                      spacing_mm: float = 3.0, test_cases: int = 2,
                      progress: Optional[Callable[[int, int, str], None]] = None) -> list[Path]:
    """Write ``tasks`` nnU-Net v2 raw datasets of synthetic abdominal CT.

    Layout per task ``t`` (1-based): ``out/Dataset00t_<Name>/`` with ``dataset.json``,
    ``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz`` and ``imagesTs/<case>_0000.nii.gz``.

    Args:
        out: parent folder (created).
        tasks: number of datasets; the five task kinds repeat with fresh anatomy after five.
        cases: labelled training cases per task.
        seed: everything derives from it; equal seeds give byte-identical files.
        size: nominal voxels per axis at ``spacing_mm`` (the field of view is ``size * spacing_mm``).
        spacing_mm: nominal spacing; each case varies it (in-plane x0.85-1.15, slices x0.95-1.5).
        test_cases: unlabelled cases in ``imagesTs`` per task.
        progress: called as ``progress(done, total, message)`` after every case.

    Returns:
        The dataset folders, in task order.

    Raises:
        InputError: an argument out of range, or an output dataset folder that holds other data.
    """
    if tasks < 1:
        raise InputError("--tasks", f"must be >= 1, got {tasks}")
    check_arguments(cases, test_cases, size, spacing_mm)
    out = Path(out)
    total, done, folders = tasks * (cases + test_cases), 0, []
    for t in range(tasks):
        spec = task_spec(t)
        name = task_name(t)
        folder = out / f"Dataset{t + 1:03d}_Phantom{name}"
        prepare_folder(folder)
        prefix = name.lower()
        for i in range(cases + test_cases):
            rng = np.random.default_rng([seed, t, i])
            hu, tissue, geometry = render_case(rng, spec.organ, size, spacing_mm)
            case_id = f"{prefix}_{i:03d}"
            if i < cases:
                label = task_label(spec, tissue)
                write_case(hu, label, geometry, folder / "imagesTr" / f"{case_id}_0000.nii.gz",
                            folder / "labelsTr" / f"{case_id}.nii.gz")
            else:
                write_case(hu, None, geometry, folder / "imagesTs" / f"{case_id}_0000.nii.gz", None)
            done += 1
            if progress is not None:
                progress(done, total, f"{folder.name}: {case_id}")
        labels = task_labels(spec)
        atomic_write_json(folder / "dataset.json", {
            "name": f"Phantom{name}",
            "description": f"Synthetic abdominal CT phantoms ({spec.name.lower()} task), MedSeqFT demo data",
            "channel_names": {"0": "CT"},
            "labels": labels,
            "numTraining": cases,
            "file_ending": ".nii.gz",
            "licence": "CC0-1.0 (synthetic)",
            "phantom": {"generator_version": GENERATOR_VERSION, "seed": seed, "task_index": t,
                        "size": size, "spacing_mm": spacing_mm, "test_cases": test_cases},
        })
        folders.append(folder)
    return folders
