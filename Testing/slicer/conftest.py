"""Shared helpers of the Slicer-side tests: make ``MedSeqFT/`` importable, artefact folder."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "MedSeqFT"
ARTIFACTS = REPO / "Testing" / "artifacts"
for p in (str(MODULE_DIR), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def artifacts_dir():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
