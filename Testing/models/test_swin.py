"""SwinUNETR split, parameter names and the pre-MONAI-1.5 PatchMerging order."""

import pytest
import torch
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import PatchMerging, PatchMergingV2

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.models import registry
from MedSeqFTLib.models.swin import LegacyPatchMerging

# a non-cubic input keeps the tiny SwinUNETR fast: 64x32x32 leaves 2x1x1 voxels at the bottom
SHAPE = (1, 1, 64, 32, 32)


class OldMonaiMerging(PatchMergingV2):
    """The 3D PatchMerging of MONAI <= 1.4, written out independently of the library code."""

    def forward(self, x):
        x0 = x[:, 0::2, 0::2, 0::2, :]
        x1 = x[:, 1::2, 0::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, 0::2, :]
        x3 = x[:, 0::2, 0::2, 1::2, :]
        x4 = x[:, 1::2, 0::2, 1::2, :]
        x5 = x[:, 0::2, 1::2, 0::2, :]
        x6 = x[:, 0::2, 0::2, 1::2, :]
        x7 = x[:, 1::2, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3, x4, x5, x6, x7], -1)
        return self.reduction(self.norm(x))


def _arch(legacy):
    return ArchConfig(name="swin_unetr", feature_size=12, legacy_patch_merging=legacy)


def test_legacy_merge_layer_matches_old_slicing_and_differs_from_stock():
    torch.manual_seed(0)
    legacy = LegacyPatchMerging(dim=4)
    old = OldMonaiMerging(dim=4)
    stock = PatchMerging(dim=4)
    old.load_state_dict(legacy.state_dict())
    stock.load_state_dict(legacy.state_dict())
    x = torch.randn(2, 4, 6, 8, 4)
    with torch.no_grad():
        out = legacy(x)
        assert out.shape == (2, 2, 3, 4, 8)
        assert torch.equal(out, old(x))
        assert not torch.allclose(out, stock(x), atol=1e-3)
    # odd sizes are zero-padded like MONAI does
    x_odd = torch.randn(1, 3, 5, 7, 4)
    padded = torch.nn.functional.pad(x_odd, (0, 0, 0, 1, 0, 1, 0, 1))
    with torch.no_grad():
        assert torch.equal(legacy(x_odd), old(padded))


def _capture(net, names):
    """Run ``net`` on X once, recording the outputs of the named submodules."""
    got = {}
    hooks = [net.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o)) for n in names]
    with torch.no_grad():
        got["logits"] = net(X)
    for h in hooks:
        h.remove()
    return got


X = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
_REF_PARTS = ["swinViT", "encoder1", "encoder2", "encoder3", "encoder4", "encoder10"]


def _monai_state(segnet):
    """Our SegNet state dict under MONAI SwinUNETR's own names."""
    out = {}
    for key, value in segnet.state_dict().items():
        group, rest = key.split(".", 1)
        out[rest if group in ("encoder", "decoder") else "out.conv.conv." + rest] = value
    return out


@pytest.fixture(scope="module")
def runs():
    """One forward pass each: our legacy/stock SegNets and MONAI references with the same weights."""
    torch.manual_seed(0)
    legacy = registry.build_segnet(_arch(True), 3).eval()
    stock = registry.build_segnet(_arch(False), 3).eval()
    stock.load_state_dict(legacy.state_dict())
    ref_stock = SwinUNETR(in_channels=1, out_channels=3, feature_size=12, use_v2=True).eval()
    ref_old = SwinUNETR(in_channels=1, out_channels=3, feature_size=12, use_v2=True, downsample=OldMonaiMerging).eval()
    ref_stock.load_state_dict(_monai_state(legacy), strict=True)
    ref_old.load_state_dict(_monai_state(legacy), strict=True)
    return {
        "nets": {"legacy": legacy, "stock": stock, "ref_stock": ref_stock},
        "legacy": _capture(legacy, ["encoder"]),
        "stock": _capture(stock, ["encoder"]),
        "ref_stock": _capture(ref_stock, _REF_PARTS),
        "ref_old": _capture(ref_old, _REF_PARTS),
    }


def _expected_encoder_outputs(ref):
    """[enc0, enc1, enc2, enc3, hidden_states_out[3], dec4] as SwinUNETR.forward computes them."""
    hidden = ref["swinViT"]
    return [ref["encoder1"], ref["encoder2"], ref["encoder3"], ref["encoder4"], hidden[3], ref["encoder10"]]


def test_merging_module_follows_the_option(runs):
    nets = runs["nets"]
    for layer in ("layers1", "layers2", "layers3", "layers4"):
        assert type(getattr(nets["legacy"].encoder.swinViT, layer)[0].downsample) is LegacyPatchMerging
        assert type(getattr(nets["stock"].encoder.swinViT, layer)[0].downsample) is PatchMerging


def test_legacy_off_equals_stock_monai_swinunetr(runs):
    ours, ref = runs["stock"], runs["ref_stock"]
    assert torch.allclose(ours["logits"], ref["logits"], atol=1e-5)
    for got, want in zip(ours["encoder"], _expected_encoder_outputs(ref), strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_legacy_encoder_matches_reference_with_old_merging(runs):
    ours, ref, stock = runs["legacy"], runs["ref_old"], runs["stock"]
    assert torch.allclose(ours["logits"], ref["logits"], atol=1e-5)
    for got, want in zip(ours["encoder"], _expected_encoder_outputs(ref), strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    # same weights, old vs new merge order: the full-resolution path is identical, the deep
    # features differ (what silently breaks old checkpoints on MONAI >= 1.5)
    assert torch.equal(ours["encoder"][0], stock["encoder"][0])
    assert not torch.allclose(ours["encoder"][4], stock["encoder"][4], atol=1e-3)


def test_parameter_names_are_monai_names_under_encoder(runs):
    nets = runs["nets"]
    names = set(nets["legacy"].state_dict())
    assert "encoder.swinViT.layers1.0.blocks.0.attn.qkv.weight" in names
    assert "encoder.swinViT.layers1.0.blocks.0.mlp.linear1.weight" in names
    assert "encoder.swinViT.layers1c.0.layer.conv1.conv.weight" in names
    assert "encoder.encoder10.layer.conv1.conv.weight" in names
    assert "decoder.decoder1.transp_conv.conv.weight" in names
    assert {"head.weight", "head.bias"} <= names
    ours = {k.split(".", 1)[1] for k in names if not k.startswith("head.")}
    assert ours == {k for k in nets["ref_stock"].state_dict() if not k.startswith("out.")}


def test_swin_sizes_and_lora_targets(runs):
    legacy = runs["nets"]["legacy"]
    arch = _arch(True)
    assert legacy.size_divisor == registry.size_divisor(arch) == 32
    assert registry.encoder_out_channels(arch) == [12, 12, 24, 48, 96, 192]
    assert [f.shape[1] for f in runs["legacy"]["encoder"]] == registry.encoder_out_channels(arch)
    targets = registry.lora_target_modules(legacy.encoder)
    linears = [t for t in targets if isinstance(legacy.encoder.get_submodule(t), torch.nn.Linear)]
    assert len(linears) == 36  # qkv, proj, linear1, linear2 in 8 blocks + 4 merge reductions
    assert "swinViT.patch_embed.proj" in targets and "encoder1.layer.conv3.conv" in targets
    with pytest.raises(ValueError, match="divisible by 32"):
        legacy(torch.zeros(1, 1, 64, 32, 48))
