"""Own foundation files: save, load, import, hashing."""

import hashlib

import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models import registry
from MedSeqFTLib.models.checkpoint import import_foundation, load_safetensors, save_safetensors
from MedSeqFTLib.models.foundation import load_foundation, save_foundation, sha256_file

ARCH = ArchConfig(name="small_unet", feature_size=4)


def _meta(pretext="voco"):
    return {"arch": ARCH.to_dict(), "ssl_pretext": pretext, "preprocess": {"spacing": [3.0, 3.0, 3.0]},
            "source_sha256": "0" * 64}


def test_save_load_round_trip_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    enc, head = registry.build_encoder(ARCH), registry.build_ssl_head(ARCH, "voco")
    path = save_foundation(tmp_path / "foundation.safetensors", enc, head, _meta())
    enc2, head2, meta = load_foundation(path)
    assert meta["kind"] == "foundation" and meta["ssl_pretext"] == "voco" and meta["created"] > 0
    assert meta["preprocess"] == {"spacing": [3.0, 3.0, 3.0]}
    for k, v in enc.state_dict().items():
        assert torch.equal(enc2.state_dict()[k], v)
    x = torch.rand(1, 1, 16, 16, 16)
    enc.eval()
    with torch.no_grad():
        for a, b in zip(enc(x), enc2(x)):
            assert torch.equal(a, b)
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        assert torch.equal(head(torch.ones(2, 60), g1), head2(torch.ones(2, 60), g2))
    tensors, _ = load_safetensors(path)
    assert {k.split(".", 1)[0] for k in tensors} == {"encoder", "ssl_head"}
    # import_foundation reads the arch and head from the file itself
    state, head_state, meta2, report = import_foundation(path)
    assert report.fraction == 1.0 and set(head_state) == set(head.state_dict())
    assert str(report) == f"{len(state)} of {len(state)} encoder tensors match (0 missing, 0 unexpected, 0 of wrong shape)"
    assert meta2["arch"] == ARCH.to_dict()


def test_foundation_without_ssl_head(tmp_path):
    enc = registry.build_encoder(ARCH)
    path = save_foundation(tmp_path / "m0.safetensors", enc, None, {"arch": ARCH.to_dict()})
    _, head, meta = load_foundation(path)
    assert head is None and meta["ssl_pretext"] is None


def test_refusals(tmp_path):
    enc = registry.build_encoder(ARCH)
    save_safetensors(tmp_path / "plain.safetensors", enc.state_dict(), {})
    with pytest.raises(InputError, match="not a MedSeqFT foundation model"):
        load_foundation(tmp_path / "plain.safetensors")
    bigger = ArchConfig(name="small_unet", feature_size=8)
    path = save_foundation(tmp_path / "lie.safetensors", enc, None, {"arch": bigger.to_dict()})
    with pytest.raises(InputError, match="do not fit the stored arch"):
        load_foundation(path)
    with pytest.raises(InputError, match="not the requested"):
        import_foundation(path, ARCH)
    with pytest.raises(ValueError, match="ssl_pretext"):
        save_foundation(tmp_path / "x.safetensors", enc, registry.build_ssl_head(ARCH, "masked"), {"arch": ARCH.to_dict()})


def test_sha256_file(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "f.bin").write_bytes(data)
    assert sha256_file(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()
    with pytest.raises(InputError, match="cannot read"):
        sha256_file(tmp_path / "missing.bin")
