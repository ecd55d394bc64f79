"""Safetensors I/O, safe foreign-checkpoint reading and key mapping of published layouts."""

import os
import pickle
import re

import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models import registry
from MedSeqFTLib.models.checkpoint import (import_foundation, load_safetensors, map_to_encoder,
                                           read_foreign_checkpoint, save_safetensors)

SWIN = ArchConfig(name="swin_unetr", feature_size=12)


@pytest.fixture(scope="module")
def swin_state():
    torch.manual_seed(3)
    return registry.build_encoder(SWIN).state_dict()


def _assert_all_equal(mapped, original, keys=None):
    for key in keys if keys is not None else original:
        assert torch.equal(mapped[key], original[key]), key


# --- safetensors -------------------------------------------------------------------------

def test_safetensors_round_trip_with_metadata(tmp_path):
    t = {"a.weight": torch.arange(6.0).view(2, 3), "b": torch.ones(4, dtype=torch.int64)}
    meta = {"kind": "foundation", "arch": {"name": "small_unet"}, "nested": [1, 2.5, None]}
    save_safetensors(tmp_path / "m.safetensors", t, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp file left over
    tensors, got = load_safetensors(tmp_path / "m.safetensors")
    assert got == meta
    assert torch.equal(tensors["a.weight"], t["a.weight"]) and torch.equal(tensors["b"], t["b"])


def test_safetensors_refuses_corrupt_and_missing_files(tmp_path):
    save_safetensors(tmp_path / "m.safetensors", {"x": torch.ones(100)}, {})
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.safetensors").write_text("hello, not a tensor file")
    for name in ("cut.safetensors", "text.safetensors", "absent.safetensors"):
        with pytest.raises(InputError, match=re.escape(name)):
            load_safetensors(tmp_path / name)


# --- unsafe pickles ------------------------------------------------------------------------

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.ones(1)}, "extra": _Evil(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    assert not marker.exists()
    with pytest.raises(InputError, match="refusing to unpickle"):
        read_foreign_checkpoint(path)
    with pytest.raises(InputError, match="refusing to unpickle"):
        import_foundation(path, SWIN)
    assert not marker.exists()


def test_foreign_reader_refuses_garbage_and_tensorless_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        read_foreign_checkpoint(tmp_path / "junk.pt")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "empty.pt")
    with pytest.raises(InputError, match="no tensor state dict"):
        read_foreign_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(InputError, match="unsupported model file type"):
        import_foundation(tmp_path / "model.onnx", SWIN)


# --- published layouts ---------------------------------------------------------------------

def test_voco_layout_loads_every_encoder_tensor(tmp_path, swin_state):
    ckpt = {"module.backbone." + k: v.clone() for k, v in swin_state.items()}
    ckpt["module.student.head.weight"] = torch.randn(64, 16)
    ckpt["module.teacher.head.weight"] = torch.randn(64, 16)
    torch.save({"state_dict": ckpt, "epoch": 100}, tmp_path / "VoCo_B_SSL_head.pt")
    mapped, head, meta, report = import_foundation(tmp_path / "VoCo_B_SSL_head.pt", SWIN)
    assert set(mapped) == set(swin_state)
    _assert_all_equal(mapped, swin_state)
    assert head is None and meta["kind"] == "foreign" and report.fraction == 1.0
    assert sorted(report.unexpected) == ["student.head.weight", "teacher.head.weight"]
    assert report.missing == [] and report.shape_mismatch == []


def test_voco_variant_spelling_net_wrapper_and_arch_guess(tmp_path, swin_state):
    ckpt = {"student.backbone." + k.replace("swinViT", "swin_vit"): v.clone() for k, v in swin_state.items()}
    torch.save({"net": ckpt}, tmp_path / "voco.pth")
    mapped, _, meta, report = import_foundation(tmp_path / "voco.pth")  # arch read off patch_embed
    assert meta["arch"]["feature_size"] == 12 and meta["arch"]["legacy_patch_merging"] is True
    assert set(mapped) == set(swin_state) and report.unexpected == []
    _assert_all_equal(mapped, swin_state)


def test_monai_model_swinvit_layout(tmp_path, swin_state):
    """MONAI's model_swinvit.pt: no swinViT. prefix, MLP named fc1/fc2, a v1 net (no layersNc)."""
    ckpt = {}
    for key, value in swin_state.items():
        if key.startswith("swinViT.") and "c.0." not in key.split(".")[1] + ".0.":
            name = key[len("swinViT."):].replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2")
            ckpt["module." + name] = value.clone()
    assert "module.layers1.0.blocks.0.mlp.fc1.weight" in ckpt and "module.patch_embed.proj.weight" in ckpt
    assert "module.layers2.0.downsample.reduction.weight" in ckpt
    ckpt["module.norm.weight"] = torch.ones(192)
    torch.save({"state_dict": ckpt}, tmp_path / "model_swinvit.pt")
    mapped, _, _, report = import_foundation(tmp_path / "model_swinvit.pt", SWIN)
    expected = [k for k in swin_state if k.startswith("swinViT.") and not re.match(r"swinViT\.layers\dc\.", k)]
    assert sorted(mapped) == sorted(expected)
    _assert_all_equal(mapped, swin_state, expected)
    assert report.unexpected == ["norm.weight"]  # reported under the normalised name
    assert report.missing and all(re.match(r"(swinViT\.layers\dc\.|encoder\d+\.)", k) for k in report.missing)
    assert 0.8 < report.fraction < 1.0
    # the MONAI names really are what SwinUNETR.load_from reads
    from monai.networks.nets import SwinUNETR

    ref = SwinUNETR(in_channels=1, out_channels=1, feature_size=12, use_v2=True)
    ref.load_from({"state_dict": ckpt})
    ref_state = ref.state_dict()
    for key in expected:
        if not key.endswith("relative_position_index"):
            assert torch.equal(ref_state[key], mapped[key]), key


def test_own_encoder_state_with_and_without_prefix(tmp_path, swin_state):
    torch.save({"encoder." + k: v for k, v in swin_state.items()}, tmp_path / "a.pt")
    save_safetensors(tmp_path / "b.safetensors", swin_state, {})
    for name in ("a.pt", "b.safetensors"):
        mapped, _, _, report = import_foundation(tmp_path / name, SWIN)
        assert report.fraction == 1.0
        _assert_all_equal(mapped, swin_state)


def test_mismatch_is_refused_with_counts(tmp_path, swin_state):
    small = registry.build_encoder(ArchConfig(name="small_unet", feature_size=8)).state_dict()
    torch.save(small, tmp_path / "cnn.pt")
    with pytest.raises(InputError, match=r"cnn.pt: only 0 of \d+ encoder tensors match"):
        import_foundation(tmp_path / "cnn.pt", SWIN)
    # right names, wrong width: everything is a shape mismatch, nothing is copied
    mapped, report = map_to_encoder({k: torch.zeros(3) for k in swin_state}, SWIN, template=swin_state)
    assert mapped == {} and len(report.shape_mismatch) == len(swin_state)
    # a partial checkpoint below the threshold
    part = {k: v for i, (k, v) in enumerate(swin_state.items()) if i < 10}
    torch.save(part, tmp_path / "part.pt")
    with pytest.raises(InputError, match=r"only \d+ of \d+ encoder tensors match"):
        import_foundation(tmp_path / "part.pt", SWIN)
    assert import_foundation(tmp_path / "part.pt", SWIN, min_fraction=0.0)[3].loaded
