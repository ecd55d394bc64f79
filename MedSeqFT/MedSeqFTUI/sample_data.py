"""A phantom CT case (liver + liver tumour) in Slicer's Sample Data module.

Nothing is downloaded: the Sample Data button runs ``medseqft phantoms`` (the library's
deterministic phantom generator, a few seconds, no torch) into a cache folder once, then loads
the first training case with its labels as a named, terminology-coded segmentation. It is the
quickest way to try "Add task from scene" and "Segment volume" without data of one's own.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable, List, Optional, Tuple

__all__ = ["CATEGORY", "SAMPLE_NAME", "PhantomSample", "register_phantom_sample"]

CATEGORY = "MedSeqFT"
SAMPLE_NAME = "MedSeqFTPhantomCT"
PHANTOM_ARGS = ["--tasks", "1", "--cases", "2", "--size", "64", "--seed", "0"]


class PhantomSample:
    """The Sample Data ``customDownloader``: ``sample(source)`` loads the phantom case.

    Args:
        scene: returns the MRML scene to load into.
        cli_prefix: returns how to run the library CLI.
        env: the environment of the CLI process.
        cache_dir: where the phantom dataset is generated (once).
        preflight: the first-use dependency check; returning ``False`` loads nothing.
    """

    def __init__(self, scene: Callable[[], object], cli_prefix: Callable[[], List[str]], env: Callable[[], dict],
                 cache_dir: Callable[[], Path], preflight: Optional[Callable[[], bool]] = None) -> None:
        self.scene, self.cli_prefix, self.env, self.cache_dir, self.preflight = scene, cli_prefix, env, cache_dir, preflight

    def dataset(self) -> Path:
        """The phantom dataset folder, generated on first use.

        Raises:
            RuntimeError: the generator failed (its last stderr line is in the message).
        """
        root = Path(self.cache_dir()) / "phantom_ct"
        existing = sorted(root.glob("Dataset*/dataset.json"))
        if existing:
            return existing[0].parent
        done = subprocess.run(self.cli_prefix() + ["phantoms", str(root)] + PHANTOM_ARGS, env=self.env(),
                              capture_output=True, text=True, timeout=600)
        existing = sorted(root.glob("Dataset*/dataset.json"))
        if done.returncode != 0 or not existing:
            last = (done.stderr or "").strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise RuntimeError(f"generating the MedSeqFT phantom failed: {last[0]}")
        return existing[0].parent

    def case(self) -> Tuple[Path, Path, dict]:
        """``(image, label, labels)`` of the first training case."""
        folder = self.dataset()
        labels = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["labels"]
        image = sorted((folder / "imagesTr").glob("*_0000.nii.gz"))[0]
        label = folder / "labelsTr" / image.name.replace("_0000.nii.gz", ".nii.gz")
        return image, label, labels

    def __call__(self, source=None):
        """Load the case into the scene; returns ``(volume, segmentation)`` or ``None``."""
        from . import scene_glue

        if self.preflight is not None and not self.preflight():
            return None
        image, label, labels = self.case()
        return scene_glue.load_case(self.scene(), image, label, labels, name=SAMPLE_NAME)


def register_phantom_sample(sample_data_logic, sample: PhantomSample, thumbnail: str) -> None:
    """Register ``sample`` with Slicer's ``SampleData.SampleDataLogic`` (category "MedSeqFT")."""
    sample_data_logic.registerCustomSampleDataSource(
        category=CATEGORY, sampleName=SAMPLE_NAME,
        # not downloaded: the custom downloader generates the case (SampleData wants a uri and a file name)
        uris="https://github.com/medseqft/SlicerMedSeqFT#phantom", fileNames=f"{SAMPLE_NAME}.nii.gz",
        nodeNames=SAMPLE_NAME, customDownloader=sample, thumbnailFileName=thumbnail)
