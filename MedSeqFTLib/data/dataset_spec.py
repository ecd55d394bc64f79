"""What ``read_dataset`` returns: a ``DatasetSpec`` listing the ``Case`` objects of one dataset.

These are plain records; the layout readers (``layout_nnunet``, ``layout_msd``, ``layout_plain``)
fill them and ``validate.validate_dataset`` completes a plain folder's labels and modality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .modality import channel_modalities

__all__ = ["Case", "DatasetSpec", "FORMATS"]

FORMATS = ("nnunet", "msd", "plain")


@dataclass
class Case:
    """One case: its image channel files (in channel order) and its label map (or ``None``)."""

    id: str
    images: list
    label: Optional[Path] = None

    def to_dict(self) -> dict:
        return {"id": self.id, "images": [str(p) for p in self.images],
                "label": None if self.label is None else str(self.label)}


@dataclass
class DatasetSpec:
    """What ``read_dataset`` found.

    Attributes:
        root: the dataset folder (absolute).
        format: ``"nnunet"``, ``"msd"`` or ``"plain"``.
        name: dataset name (``dataset.json`` ``name`` or the folder name).
        channel_names: ``{"0": "CT", ...}``; plain folders start as ``"unknown"`` until
            ``modality.apply_modality`` sets them or ``validate_dataset`` guesses them from
            intensities.
        labels: ``{name: value}`` with background 0 and values 0..N-1; empty for a plain folder
            without ``labels.json`` until ``validate_dataset`` fills it from the label maps.
        file_ending: image suffix shared by all files (``""`` for a plain folder mixing formats).
        cases: labelled training cases, sorted by id.
        test_only: unlabelled cases (``imagesTs/``, MSD ``test``), sorted by id.
        modality: ``"CT"`` if every channel is named CT, else ``"MR"`` (z-score normalisation);
            ``modality.apply_modality`` may set ``"PET"`` or ``"other"`` (also z-score). The
            per-channel modalities are ``channel_modalities``.
        given_split: the dataset's own train/test split (plain ``split.json``), else ``None``.
        warnings: problems noticed while reading that do not stop the import.
    """

    root: Path
    format: str
    name: str
    channel_names: dict
    labels: dict
    file_ending: str
    cases: list
    test_only: list = field(default_factory=list)
    modality: str = "MR"
    given_split: Optional[dict] = None
    warnings: list = field(default_factory=list)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def channel_modalities(self) -> list:
        """Modality of each channel (``["CT", "PET"]``): what its name states, else ``modality``."""
        return channel_modalities(self.channel_names, self.modality)

    @property
    def case_ids(self) -> list:
        return [c.id for c in self.cases]

    def to_dict(self) -> dict:
        """The parts of the spec that ``task.json`` stores (see docs/CONTRACTS.md)."""
        return {"source": {"path": str(self.root), "format": self.format}, "name": self.name,
                "modality": self.modality, "channel_names": dict(self.channel_names),
                "channel_modalities": self.channel_modalities,
                "labels": dict(self.labels), "file_ending": self.file_ending,
                "cases": [c.to_dict() for c in self.cases],
                "test_only": [c.to_dict() for c in self.test_only]}
