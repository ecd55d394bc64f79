"""SSL pretexts: shapes, determinism, stochasticity and the loss arithmetic."""

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models import registry
from MedSeqFTLib.models.ssl import get_pretext
from MedSeqFTLib.models.ssl_masked import block_masks
from MedSeqFTLib.models.ssl_voco import overlap_targets

ARCH = ArchConfig(name="small_unet", feature_size=4)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return registry.build_encoder(ARCH).eval()


def _volumes(b=2, size=(32, 32, 16)):
    return torch.rand((b, 1) + size, generator=torch.Generator().manual_seed(5))


def test_block_masks_mask_exact_share_of_aligned_cubes():
    m = block_masks(3, (16, 24, 8), 8, 0.4, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert m.shape == (3, 1, 16, 24, 8)
    blocks = m.view(3, 2, 8, 3, 8, 1, 8).permute(0, 1, 3, 5, 2, 4, 6).reshape(3, 6, -1)
    # every 8^3 cube is all-masked or all-kept, round(0.4 * 6) = 2 cubes per mask
    assert torch.all((blocks.amin(-1) == blocks.amax(-1)))
    assert blocks[..., 0].sum(1).tolist() == [2.0, 2.0, 2.0]


def test_overlap_targets_match_brute_force_areas():
    rng = np.random.default_rng(0)
    cx, cy, g = 5, 7, 3
    ox = torch.as_tensor(rng.integers(0, 2 * cx + 1, size=20))
    oy = torch.as_tensor(rng.integers(0, 2 * cy + 1, size=20))
    got = overlap_targets(ox, oy, cx, cy, g)
    for n in range(20):
        crop = np.zeros((g * cx, g * cy), bool)
        crop[ox[n]:ox[n] + cx, oy[n]:oy[n] + cy] = True
        for i in range(g):
            for j in range(g):
                inter = crop[i * cx:(i + 1) * cx, j * cy:(j + 1) * cy].sum()
                assert got[n, i * g + j].item() == pytest.approx(inter / (cx * cy))
    assert torch.allclose(got.sum(-1), torch.ones(20))


@pytest.mark.parametrize("name", ["masked", "voco"])
def test_loss_shape_determinism_and_no_global_rng(encoder, name):
    pretext = get_pretext(name)
    torch.manual_seed(0)
    head = pretext.build_head(ARCH).eval()
    x = _volumes()
    state = torch.random.get_rng_state()
    with torch.no_grad():
        a = pretext.loss(encoder, head, x, torch.Generator().manual_seed(1), 4)
        b = pretext.loss(encoder, head, x, torch.Generator().manual_seed(1), 4)
        c = pretext.loss(encoder, head, x, torch.Generator().manual_seed(2), 4)
    assert torch.equal(torch.random.get_rng_state(), state)  # only the caller's generator is used
    assert a.shape == (2, 4) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.std() > 0  # views differ from one another (eval mode: voco dropout stays on)


@pytest.mark.parametrize("name", ["masked", "voco"])
def test_loss_backpropagates_into_encoder_and_head(name):
    pretext = get_pretext(name)
    torch.manual_seed(0)
    enc, head = registry.build_encoder(ARCH), pretext.build_head(ARCH)
    pretext.loss(enc, head, _volumes(1), torch.Generator().manual_seed(0), 2).mean().backward()
    assert enc.levels[3].conv2.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_masked_loss_is_l1_on_masked_voxels(encoder):
    pretext = get_pretext("masked")
    head = pretext.build_head(ARCH)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(0.25)  # reconstruction is 0.25 everywhere
        x = torch.ones(2, 1, 16, 16, 16)
        loss = pretext.loss(encoder, head, x, torch.Generator().manual_seed(0), 3)
    assert torch.allclose(loss, torch.full((2, 3), 0.75))


def test_voco_loss_with_identical_embeddings(encoder):
    """All embeddings equal -> ReLU(cos) = 1 -> loss = mean(1 - overlap) = 1 - 1/grid^2."""
    pretext = get_pretext("voco")
    head = pretext.build_head(ARCH)
    with torch.no_grad():
        head.fc2.weight.zero_()
        head.fc2.bias.fill_(1.0)
        loss = pretext.loss(encoder, head, _volumes(), torch.Generator().manual_seed(0), 3)
    assert torch.allclose(loss, torch.full((2, 3), 0.75))


def test_bad_inputs(encoder):
    voco = get_pretext("voco")
    head = voco.build_head(ARCH)
    assert voco.input_multiple(ARCH) == (16, 16, 8)
    assert get_pretext("masked").input_multiple(ARCH) == (8, 8, 8)
    with pytest.raises(InputError, match="multiple"):
        voco.loss(encoder, head, torch.zeros(1, 1, 17, 16, 16), torch.Generator(), 2)
    with pytest.raises(InputError, match="n_views"):
        voco.loss(encoder, head, torch.zeros(1, 1, 16, 16, 16), torch.Generator(), 0)
    with pytest.raises(InputError, match="unknown pretext"):
        get_pretext("jigsaw")
