"""Two-channel phantom datasets for tasks that bring a second modality (UNICON), as nnU-Net v2 raw folders.

* **CT+PET** (``generate_ctpet_phantoms``): channel 0 is exactly the CT of a CT phantom task
  (``phantoms.render_case`` with that task's generator, so ``liver_003_0000`` is byte-identical
  to the same case of ``Dataset001_PhantomLiver`` for the same seed and size); channel 1 is a
  PET-like uptake map (SUV-like, float32) on the same grid: high in every tumour (5-12), moderate
  in the kidneys (urinary excretion, 3-6), stomach and bowel, about 2 in liver, spleen and blood
  pool, low in muscle and fat, 0 in air; blurred to PET resolution (Gaussian, FWHM 2-3 nominal
  voxels), with Poisson counting noise and a light post-reconstruction smoothing. Labels are the
  CT task's (organ and its tumour), so CT-only and CT+PET can be compared case by case.
* **T1+T2 MR** (``generate_mr2_phantoms``): channel 0 is exactly the T1 of ``phantoms_mr`` (same
  stream, same case), channel 1 a T2-like contrast of the same head: CSF bright (dark in T1), grey
  matter brighter than white matter (the reverse of T1), the globus pallidus dark, and the four
  labelled structures with contrast signs of their own against their rim, so neither sequence
  alone shows everything.

Only ``np.random.default_rng`` seeded from the seed, a stream number and the case is used: equal
seeds give byte-identical files, and case *i* does not depend on how many cases were requested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_write_json
from . import phantoms as ct
from . import phantoms_mr as mr
from .phantom_scene import prepare_folder, write_case

__all__ = ["CTPET_KIND", "MR2_KIND", "MR2_DATASET_NAME", "PET_SUV", "ctpet_dataset_name", "render_pet",
           "render_mr2_case", "generate_ctpet_phantoms", "generate_mr2_phantoms"]

GENERATOR_VERSION = 1
CTPET_KIND = "ct_pet"
MR2_KIND = "mr_t1_t2"
MR2_DATASET_NAME = "Dataset102_PhantomBrainMR2"
PET_STREAM = 201  # generator of the PET draws, apart from the CT task's own (the CT stays identical)
# nominal uptake (SUV-like) per CT tissue; a case jitters each by up to +-20 %
PET_SUV = {
    "air": 0.0, "gas": 0.0, "fat": 0.4, "muscle": 0.7, "viscera": 1.5, "bone": 1.1, "disc": 0.6,
    "liver": 2.1, "spleen": 1.9, "kidney": 4.5, "pancreas": 1.6, "stomach": 2.2,
    "aorta": 1.8, "branch": 1.8, "ivc": 1.7,
}
TUMOUR_SUV = (5.0, 12.0)  # FDG-avid lesions, drawn per tumour tissue and case


def ctpet_dataset_name(task: int) -> str:
    """``Dataset201_PhantomLiverCTPET`` for CT task 0, ``Dataset202_PhantomKidneyCTPET`` for 1, ..."""
    return f"Dataset{201 + task:03d}_Phantom{ct.task_name(task)}CTPET"


def render_pet(rng: np.random.Generator, tissue: np.ndarray, spacing, nominal_mm: float) -> np.ndarray:
    """A PET-like uptake map of a ``phantoms.render_case`` tissue map, on the same grid.

    Args:
        rng: the PET's own generator.
        tissue: (Z, Y, X) uint8 tissue ids (``phantoms.TISSUES``).
        spacing: the grid's spacing (x, y, z) in mm (SimpleITK order).
        nominal_mm: the generator's nominal voxel size; the PSF is 2-3 of those (FWHM).

    Returns:
        (Z, Y, X) float32 >= 0, SUV-like: 0 in air, the tumours the hottest tissue.
    """
    from scipy.ndimage import gaussian_filter

    lut = np.zeros(len(ct.TISSUES), dtype=np.float32)
    for name, suv in PET_SUV.items():
        lut[ct.T[name]] = suv * rng.uniform(0.8, 1.2)
    for name in ct.TISSUES:
        if name.endswith("_tumour"):
            lut[ct.T[name]] = rng.uniform(*TUMOUR_SUV)
    activity = lut[tissue]
    # scanner resolution: FWHM 2-3 nominal voxels (6-9 mm at 3 mm), the same in mm on every axis
    fwhm_mm = rng.uniform(2.0, 3.0) * nominal_mm
    sigma = [fwhm_mm / 2.3548 / s for s in spacing[::-1]]  # (x, y, z) spacing -> (Z, Y, X) axes
    activity = np.maximum(gaussian_filter(activity, sigma=sigma, mode="nearest"), 0.0)
    # counting noise: Poisson on activity x counts-per-SUV (10-20 % noise in the liver), then the
    # reconstruction's smoothing correlates it over about a voxel, as in a real image
    counts = rng.uniform(15.0, 40.0)
    noisy = rng.poisson(activity * counts).astype(np.float32) / np.float32(counts)
    noisy = gaussian_filter(noisy, sigma=0.6, mode="nearest")
    # outside the body's blurred footprint there is no activity and no count: exactly 0, as the
    # attenuation-corrected image of the air around a patient is (the z-score's "nonzero" body)
    noisy[activity < 0.02] = 0.0
    return np.maximum(noisy, 0.0).astype(np.float32)


def generate_ctpet_phantoms(out: Path, task: int = 0, cases: int = 12, seed: int = 0, size: int = 64,
                            spacing_mm: float = 3.0, test_cases: int = 2,
                            progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """Write ``out/<ctpet_dataset_name(task)>``: CT (``_0000``) + PET (``_0001``) of CT phantom task ``task``.

    ``dataset.json`` has ``channel_names {"0": "CT", "1": "PET"}``, the CT task's labels and a
    ``"phantom"`` block; ``imagesTr/<case>_0000.nii.gz`` (int16 HU), ``_0001.nii.gz`` (float32
    uptake), ``labelsTr/<case>.nii.gz`` and ``imagesTs/``. An earlier generated dataset in that
    folder is replaced; any other folder is refused.

    Args:
        out: parent folder (created).
        task: 0-based CT task (``phantoms.task_spec``) whose anatomy, CT and labels are taken; it
            must carry tumours (not the vessel task).
        cases, seed, size, spacing_mm, test_cases: as ``phantoms.generate_phantoms``; with the
            same values the CT channel equals that task's ``_0000`` files.
        progress: called as ``progress(done, total, message)`` after every case.

    Returns:
        The dataset folder.

    Raises:
        InputError: an argument out of range, a task without tumours, or an output folder that
            holds other data.
    """
    if task < 0:
        raise InputError("task", f"must be >= 0, got {task}")
    spec = ct.task_spec(task)
    if spec.organ is None:
        raise InputError("task", f"CT phantom task {task} ({spec.name}) has no tumours; a CT+PET task needs one "
                                 "(0 Liver, 1 Kidney, 2 Pancreas, 4 Spleen)")
    ct.check_arguments(cases, test_cases, size, spacing_mm)
    folder = Path(out) / ctpet_dataset_name(task)
    prepare_folder(folder)
    prefix = ct.task_name(task).lower()
    total = cases + test_cases
    for i in range(total):
        # the CT task's own generator, so the CT and labels are that task's case i exactly
        hu, tissue, geometry = ct.render_case(np.random.default_rng([seed, task, i]), spec.organ, size, spacing_mm)
        pet = render_pet(np.random.default_rng([seed, PET_STREAM, task, i]), tissue, geometry["spacing"], spacing_mm)
        case_id = f"{prefix}_{i:03d}"
        sub, label = ("imagesTr", ct.task_label(spec, tissue)) if i < cases else ("imagesTs", None)
        write_case(hu, label, geometry, folder / sub / f"{case_id}_0000.nii.gz",
                   folder / "labelsTr" / f"{case_id}.nii.gz" if label is not None else None)
        write_case(pet, None, geometry, folder / sub / f"{case_id}_0001.nii.gz", None)
        if progress is not None:
            progress(i + 1, total, f"{folder.name}: {case_id}")
    atomic_write_json(folder / "dataset.json", {
        "name": f"Phantom{ct.task_name(task)}CTPET",
        "description": f"Synthetic abdominal CT with a registered PET-like channel ({spec.name.lower()} task), "
                       "MedSeqFT test data",
        "channel_names": {"0": "CT", "1": "PET"},
        "labels": ct.task_labels(spec),
        "numTraining": cases,
        "file_ending": ".nii.gz",
        "licence": "CC0-1.0 (synthetic)",
        "phantom": {"kind": CTPET_KIND, "generator_version": GENERATOR_VERSION, "ct_generator_version":
                    ct.GENERATOR_VERSION, "seed": seed, "task_index": task, "size": size, "spacing_mm": spacing_mm,
                    "test_cases": test_cases},
    })
    return folder


# ---------------------------------------------------------------- T1 + T2 MR

# sign of each labelled structure's T2 contrast against its deep-grey rim: thalamus and putamen
# darker (iron), caudate and hippocampus brighter; in T1 the signs are +, -, -, + (phantoms_mr)
_T2_SIGN = {"thalamus": -1.0, "putamen": -1.0, "caudate": 1.0, "hippocampus": 1.0}


def _t2_intensities(rng: np.random.Generator, tissue: np.ndarray, scene) -> np.ndarray:
    """T2 contrast of an (X, Y, Z) ``phantoms_mr`` tissue map, then ``phantoms_mr.acquire``; int16 >= 0."""
    wm, gm = 560.0 * rng.uniform(0.97, 1.03), 820.0 * rng.uniform(0.96, 1.04)
    delta = gm - wm
    lut = np.zeros(len(mr.TISSUES), dtype=np.float32)
    lut[mr.T["scalp"]], lut[mr.T["skull"]] = rng.uniform(620, 720), rng.uniform(40, 70)
    lut[mr.T["csf"]] = rng.uniform(1500, 1800)  # free water: the brightest tissue in T2, dark in T1
    lut[mr.T["gm"]], lut[mr.T["wm"]] = gm, wm
    lut[mr.T["deep_grey"]] = wm + rng.uniform(0.45, 0.6) * delta
    lut[mr.T["pallidum"]] = wm - rng.uniform(0.1, 0.25) * delta  # iron: darker than white matter
    for name in mr.LABELS:
        lut[mr.T[name]] = lut[mr.T["deep_grey"]] + _T2_SIGN[name] * rng.uniform(0.1, 0.2) * delta
    return mr.acquire(rng, lut[tissue], scene, wm)


def render_mr2_case(rng: np.random.Generator, size: int = 64, spacing_mm: float = 1.5) -> tuple:
    """One head in T1 and T2: ``(t1, t2, tissue, geometry)``, arrays (Z, Y, X) on one grid.

    The anatomy and T1 are ``phantoms_mr.render_mr_case``'s for the same ``rng`` state (the T2 is
    drawn afterwards), so the T1 channel equals the single-sequence dataset's image.
    """
    tissue, scene = mr.render_mr_anatomy(rng, size, spacing_mm)
    t1 = mr.t1_intensities(rng, tissue, scene)
    t2 = _t2_intensities(rng, tissue, scene)
    return mr.to_sitk_order(t1), mr.to_sitk_order(t2), mr.to_sitk_order(tissue), mr.scene_geometry(scene)


def generate_mr2_phantoms(out: Path, cases: int = 10, seed: int = 0, size: int = 64, spacing_mm: float = 1.5,
                          test_cases: int = 2, progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """Write ``out/Dataset102_PhantomBrainMR2``: T1 (``_0000``) and T2 (``_0001``) heads with four small
    deep structures labelled as in ``phantoms_mr``; ``channel_names {"0": "T1", "1": "T2"}``.

    Arguments, layout and refusals as ``phantoms_mr.generate_mr_phantoms``.

    Raises:
        InputError: an argument out of range (field of view under ``phantoms_mr.MIN_FOV_MM``
            included), or an output folder that holds other data.
    """
    mr.check_mr_arguments(cases, test_cases, size, spacing_mm)
    folder = Path(out) / MR2_DATASET_NAME
    prepare_folder(folder)
    lut = mr.label_lut()
    total = cases + test_cases
    for i in range(total):
        t1, t2, tissue, geometry = render_mr2_case(np.random.default_rng([seed, mr.MR_STREAM, i]), size, spacing_mm)
        case_id = f"brain_{i:03d}"
        sub, label = ("imagesTr", lut[tissue]) if i < cases else ("imagesTs", None)
        write_case(t1, label, geometry, folder / sub / f"{case_id}_0000.nii.gz",
                   folder / "labelsTr" / f"{case_id}.nii.gz" if label is not None else None)
        write_case(t2, None, geometry, folder / sub / f"{case_id}_0001.nii.gz", None)
        if progress is not None:
            progress(i + 1, total, f"{folder.name}: {case_id}")
    atomic_write_json(folder / "dataset.json", {
        "name": "PhantomBrainMR2",
        "description": "Synthetic T1- and T2-weighted brain MR phantoms with small deep structures, MedSeqFT test data",
        "channel_names": {"0": "T1", "1": "T2"},
        "labels": {"background": 0, **{name: v for v, name in enumerate(mr.LABELS, start=1)}},
        "numTraining": cases,
        "file_ending": ".nii.gz",
        "licence": "CC0-1.0 (synthetic)",
        "phantom": {"kind": MR2_KIND, "generator_version": GENERATOR_VERSION, "mr_generator_version":
                    mr.GENERATOR_VERSION, "seed": seed, "size": size, "spacing_mm": spacing_mm, "test_cases": test_cases},
    })
    return folder
