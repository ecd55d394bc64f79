"""Fixtures for command-line tests: a tiny foundation file and a fresh workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import main

@pytest.fixture(scope="session")
def foundation_file(tmp_path_factory) -> Path:
    """A tiny small_unet foundation file in our own safetensors format."""
    import torch

    from MedSeqFTLib.config import ArchConfig, PreprocessConfig
    from MedSeqFTLib.models.foundation import save_foundation
    from MedSeqFTLib.models.registry import build_encoder, build_ssl_head

    torch.manual_seed(0)
    arch = ArchConfig(name="small_unet", feature_size=4)
    path = tmp_path_factory.mktemp("foundation") / "tiny.safetensors"
    save_foundation(path, build_encoder(arch), build_ssl_head(arch, "masked"), {
        "kind": "foundation", "arch": arch.to_dict(), "ssl_pretext": "masked",
        "preprocess": PreprocessConfig(spacing=(4.0, 4.0, 4.0), patch_size=(16, 16, 16)).to_dict(),
        "source_sha256": "0" * 64})
    return path


@pytest.fixture()
def workspace(tmp_path, foundation_file) -> Path:
    ws = tmp_path / "ws"
    assert main(["init", str(ws), "--foundation", str(foundation_file)]) == 0
    return ws
