"""LoRA merge exactness for every backbone, and the PEFT 0.21.2 1x1x1-Conv3d merge bug."""

import copy

import pytest
import torch
from torch import nn

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.models.registry import build_encoder, lora_target_modules
from MedSeqFTLib.retention.merge import add_lora, lora_parameters, merge_lora, needs_own_merge

torch.set_num_threads(1)


def _randomise_lora(model, std, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


# SwinUNETR needs 64^3: its instance norm at 1/32 scale refuses a single voxel
@pytest.mark.parametrize("arch,size", [(ArchConfig("small_unet", feature_size=4), 16),
                                       (ArchConfig("swin_unetr", feature_size=12), 64)])
def test_merged_encoder_equals_lora_encoder(arch, size):
    torch.manual_seed(0)
    # float64 so that the comparison measures the merge, not float32 reassociation noise
    # (float32 differences are ~5e-6 for the U-Net and ~2e-5 through the 24 Swin blocks)
    base = build_encoder(arch).double().eval()
    shapes = {k: tuple(v.shape) for k, v in base.state_dict().items()}
    targets = lora_target_modules(base)
    lora = add_lora(copy.deepcopy(base), rank=2, alpha=2.0).eval()
    assert sorted(n for n, p in lora.named_parameters() if p.requires_grad) == sorted(lora_parameters(lora))
    assert len(lora_parameters(lora)) == 2 * len(targets)
    _randomise_lora(lora, std=0.05)
    x = torch.randn(1, 1, size, size, size, dtype=torch.float64)
    with torch.no_grad():
        out_base = base(x)
        out_lora = lora(x)
    # the adapters really change the function, otherwise the test would be trivial
    assert max((a - b).abs().max().item() for a, b in zip(out_base, out_lora)) > 1e-3
    merged = merge_lora(lora)
    with torch.no_grad():
        out_merged = merged(x)
    diff = max((a - b).abs().max().item() for a, b in zip(out_lora, out_merged))
    assert diff <= 1e-5
    # same names and shapes as E_{t-1}: plain layers again, no LoRA left
    assert {k: tuple(v.shape) for k, v in merged.state_dict().items()} == shapes
    assert not any("lora" in n for n, _ in merged.named_modules())
    # and it loads into a freshly built encoder (what task_model does)
    fresh = build_encoder(arch).double()
    fresh.load_state_dict(merged.state_dict(), strict=True)


class _OneByOne(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv3d(3, 5, kernel_size=1)
        self.conv = nn.Conv3d(5, 4, kernel_size=3, padding=1)

    def forward(self, x):
        return self.conv(self.proj(x))


def _stock_merge_fails() -> bool:
    layer = add_lora(_OneByOne(), rank=2, alpha=2.0).proj
    _randomise_lora(layer, 0.1)
    try:
        layer.merge()
    except RuntimeError:
        return True
    return False


def test_stock_peft_merge_of_1x1x1_conv3d_is_broken_on_0_21_2():
    import peft

    if not _stock_merge_fails():
        pytest.skip(f"peft {peft.__version__} merges 1x1x1 Conv3d LoRA itself (bug #3768 fixed)")
    assert peft.__version__ == "0.21.2"


def test_own_merge_handles_1x1x1_conv3d():
    torch.manual_seed(1)
    model = add_lora(_OneByOne().double(), rank=2, alpha=4.0)  # scale 2 must be applied
    _randomise_lora(model, 0.1)
    assert needs_own_merge(model.proj) and not needs_own_merge(model.conv)
    x = torch.randn(2, 3, 6, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        want = model(x)
        a = model.proj.lora_A["default"].weight.flatten(1)
        b = model.proj.lora_B["default"].weight.flatten(1)
        expected_w = model.proj.base_layer.weight + 2.0 * (b @ a).reshape(5, 3, 1, 1, 1)
    merged = merge_lora(model)
    assert isinstance(merged.proj, nn.Conv3d) and type(merged.proj) is nn.Conv3d
    torch.testing.assert_close(merged.proj.weight, expected_w)
    with torch.no_grad():
        got = merged(x)
    assert (got - want).abs().max().item() <= 1e-10


def test_add_lora_refuses_module_without_targets():
    with pytest.raises(ValueError):
        add_lora(nn.Sequential(nn.ReLU()), rank=2, alpha=2.0)


def test_lora_targets_default_per_backbone():
    """``retention.lora_targets = "auto"``: every Linear of SwinUNETR (the paper), every Conv3d of the small U-Net."""
    from MedSeqFTLib.errors import InputError
    from MedSeqFTLib.models.registry import lora_target_kinds

    swin, unet = ArchConfig("swin_unetr", feature_size=12), ArchConfig("small_unet", feature_size=4)
    assert lora_target_kinds(swin) == ("linear",) and lora_target_kinds(unet) == ("conv3d",)
    assert lora_target_kinds(swin, "linear+conv3d") == ("linear", "conv3d")
    with pytest.raises(InputError, match="lora_targets"):
        lora_target_kinds(swin, "linear+conv2d")
    with pytest.raises(ValueError, match="kind"):
        lora_target_modules(nn.Linear(2, 2), ("attention",))

    encoder = build_encoder(swin)
    lora = add_lora(copy.deepcopy(encoder), rank=2, alpha=2.0, kinds=lora_target_kinds(swin))
    wrapped = {n.rsplit(".lora_A", 1)[0] for n in lora_parameters(lora) if ".lora_A" in n}
    linears = {n for n, m in encoder.named_modules() if isinstance(m, nn.Linear)}
    assert wrapped == linears and len(linears) == 36  # no Conv3d (patch embedding, UNETR blocks) adapted
    merged = merge_lora(lora)
    assert {k: v.shape for k, v in merged.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}

    unet_encoder = build_encoder(unet)
    assert lora_target_modules(unet_encoder, ("linear",)) == []  # the runner refuses "linear" for it
    with pytest.raises(ValueError, match="linear"):
        add_lora(unet_encoder, rank=2, alpha=2.0, kinds=("linear",))
