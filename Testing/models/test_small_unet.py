"""Small U-Net backbone, SegNet wiring and the registry."""

import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models import registry
from MedSeqFTLib.models.segnet import SegNet

ARCH = ArchConfig(name="small_unet", in_channels=2, feature_size=4)


def test_shapes_through_encoder_decoder_and_head():
    torch.manual_seed(0)
    net = registry.build_segnet(ARCH, n_classes=3)
    assert isinstance(net, SegNet) and net.size_divisor == registry.size_divisor(ARCH) == 8
    x = torch.randn(2, 2, 16, 24, 32)
    feats = net.encoder(x)
    assert [tuple(f.shape) for f in feats] == [
        (2, 4, 16, 24, 32), (2, 8, 8, 12, 16), (2, 16, 4, 6, 8), (2, 32, 2, 3, 4)]
    assert [f.shape[1] for f in feats] == registry.encoder_out_channels(ARCH)
    assert net.decoder(feats).shape == (2, 4, 16, 24, 32)
    logits = net(x)
    assert logits.shape == (2, 3, 16, 24, 32)
    # forward is exactly head(decoder(encoder(x)))
    assert torch.equal(logits, net.head(net.decoder(net.encoder(x))))
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 2, 16, 16, 12))


def test_parameter_names_split_by_part_and_load_separately():
    torch.manual_seed(0)
    a = registry.build_segnet(ARCH, 2)
    torch.manual_seed(1)
    b = registry.build_segnet(ARCH, 2)
    groups = {k.split(".", 1)[0] for k in a.state_dict()}
    assert groups == {"encoder", "decoder", "head"}
    b.encoder.load_state_dict(a.encoder.state_dict())
    x = torch.randn(1, 2, 16, 16, 16)
    for fa, fb in zip(a.encoder(x), b.encoder(x)):
        assert torch.equal(fa, fb)
    assert not torch.equal(a(x), b(x))  # decoder and head were not copied


def test_lora_targets_are_every_linear_and_conv3d_including_1x1x1():
    enc = registry.build_encoder(ARCH)
    targets = registry.lora_target_modules(enc)
    expected = [n for n, m in enc.named_modules() if type(m) in (torch.nn.Linear, torch.nn.Conv3d)]
    assert targets == expected and len(targets) == 12  # conv1, conv2, conv3 (projection) per level
    kernels = {tuple(enc.get_submodule(t).kernel_size) for t in targets}
    assert (1, 1, 1) in kernels and (3, 3, 3) in kernels


def test_training_step_reduces_loss_on_a_fixed_batch():
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    net = registry.build_segnet(ArchConfig(name="small_unet", feature_size=4), 2)
    x = torch.randn(2, 1, 16, 16, 16)
    y = (x > 0.5).long()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    # 16 steps: the head starts at a 1 % foreground prior (recipe.head_prior), far from this
    # batch's 31 % foreground, so the first steps move the biases before the loss falls
    for _ in range(16):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_bad_arguments():
    with pytest.raises(InputError, match="n_classes"):
        registry.build_segnet(ARCH, 0)
    with pytest.raises(InputError, match="unknown pretext"):
        registry.build_ssl_head(ARCH, "rotation")
    with pytest.raises(InputError, match="unknown backbone"):
        ArchConfig(name="resnet")
