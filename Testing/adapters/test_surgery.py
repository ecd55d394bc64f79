"""Adapter-mode model surgery: what each method trains and stores, and what it refuses."""

import pytest
import torch

from MedSeqFTLib.adapters.modules import Hypercolumn, SpatialAdapter
from MedSeqFTLib.adapters.surgery import build_adapter_net, check_method, load_owned, lora_targets_for, owned_state
from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models.registry import build_decoder, build_encoder

torch.set_num_threads(1)
ARCH = ArchConfig(name="small_unet", feature_size=4)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return build_encoder(ARCH).state_dict(), build_decoder(ARCH).state_dict()


def _trainable(net):
    return {n for n, p in net.named_parameters() if p.requires_grad}


def test_spatial_adapter_starts_as_identity_and_keeps_shape():
    x = torch.randn(2, 5, 6, 6, 6)
    for k in (3, 1):
        ad = SpatialAdapter(5, k)
        assert torch.equal(ad(x), x)
    hc = Hypercolumn([2, 3])
    out = hc([torch.randn(1, 2, 8, 8, 8), torch.randn(1, 3, 4, 4, 4)])
    assert out.shape == (1, 5, 8, 8, 8) and hc.out_channels == 5


def test_each_method_trains_exactly_its_parameters(base):
    enc, dec = base
    n_enc = sum(v.numel() for v in enc.values())
    expect = {
        "linear_probe": lambda n: n.startswith("head."),
        "spatial_adapter": lambda n: n.startswith(("head.", "decoder.adapter.")),
        "spatial_adapter_1x1": lambda n: n.startswith(("head.", "decoder.adapter.")),
        "decoder": lambda n: n.startswith(("head.", "decoder.base.")),
        "lora": lambda n: n.startswith("head.") or "lora_" in n,
        "full": lambda n: True,
    }
    for method, rule in expect.items():
        torch.manual_seed(1)
        net = build_adapter_net(ARCH, 3, method, enc, dec)
        names = {n for n, _ in net.named_parameters()}
        assert _trainable(net) == {n for n in names if rule(n)}, method
        # the frozen base is the base: every encoder weight equals the given state
        plain = {k.replace("base_layer.", ""): v for k, v in net.encoder.state_dict().items() if "lora_" not in k}
        assert all(torch.equal(plain[k], v) for k, v in enc.items()), method
    lora = build_adapter_net(ARCH, 3, "lora", enc, dec)
    assert 0 < sum(p.numel() for p in lora.encoder.parameters() if p.requires_grad) < n_enc / 4


def test_without_base_decoder_black_box_uses_the_hypercolumn_and_others_train_a_new_decoder(base):
    enc, _ = base
    probe = build_adapter_net(ARCH, 3, "linear_probe", enc, None)
    assert isinstance(probe.decoder.base, Hypercolumn) and probe.head.in_channels == 4 * (1 + 2 + 4 + 8)
    assert _trainable(probe) == {"head.weight", "head.bias"}
    lora = build_adapter_net(ARCH, 3, "lora", enc, None)
    assert all(p.requires_grad for p in lora.decoder.base.parameters())
    assert lora(torch.randn(1, 1, 16, 16, 16)).shape == (1, 3, 16, 16, 16)


def test_owned_state_round_trip_and_refusals(base, tmp_path):
    enc, dec = base
    torch.manual_seed(2)
    net = build_adapter_net(ARCH, 3, "spatial_adapter", enc, dec)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    owned = owned_state(net)
    assert set(owned) == _trainable(net)
    torch.manual_seed(99)
    other = build_adapter_net(ARCH, 3, "spatial_adapter", enc, dec)
    load_owned(other, owned, tmp_path / "a.safetensors")
    x = torch.randn(1, 1, 16, 16, 16)
    net.eval(), other.eval()
    assert torch.equal(net(x), other(x))
    with pytest.raises(InputError, match="missing"):
        load_owned(other, {k: v for k, v in owned.items() if k != "head.bias"}, tmp_path / "a.safetensors")
    with pytest.raises(InputError, match="unexpected"):
        load_owned(other, {**owned, "encoder.x": torch.zeros(1)}, tmp_path / "a.safetensors")
    bad = dict(owned)
    bad["head.bias"] = torch.zeros(5)
    with pytest.raises(InputError, match="shape"):
        load_owned(other, bad, tmp_path / "a.safetensors")


def test_refusals_before_any_work():
    with pytest.raises(InputError, match="no bias"):
        check_method(ARCH, "bitfit", True)
    with pytest.raises(InputError, match="must be one of"):
        check_method(ARCH, "prompt", True)
    with pytest.raises(InputError, match="spatial_adapter_1x1"):
        check_method(ArchConfig(name="small_unet", feature_size=8), "spatial_adapter", False)  # 120-channel hypercolumn
    check_method(ArchConfig(name="small_unet", feature_size=8), "spatial_adapter_1x1", False)
    check_method(ArchConfig(name="small_unet", feature_size=8), "spatial_adapter", True)
    swin = ArchConfig(name="swin_unetr", feature_size=24)
    with pytest.raises(InputError, match="hypercolumn"):
        check_method(swin, "linear_probe", False)
    check_method(swin, "linear_probe", True)
    check_method(swin, "bitfit", False)  # Swin's linears and norms have biases


def test_lora_targets_swin_qkv_and_every_cnn_conv():
    swin = ArchConfig(name="swin_unetr", feature_size=12)
    names = lora_targets_for(swin, build_encoder(swin))
    assert names and all(n.endswith("attn.qkv") for n in names)
    enc = build_encoder(ARCH)
    convs = [n for n, m in enc.named_modules() if isinstance(m, torch.nn.Conv3d)]
    assert lora_targets_for(ARCH, enc) == convs
