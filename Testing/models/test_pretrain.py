"""SSL pretraining: learns, is reproducible, reports progress, validates input."""

import numpy as np
import pytest
import torch

from MedSeqFTLib.config import ArchConfig
from MedSeqFTLib.errors import InputError
from MedSeqFTLib.models.pretrain import pretrain, random_patches

ARCH = ArchConfig(name="small_unet", feature_size=4)


def _phantoms(n=3, size=24):
    """Smooth blob volumes (C=1) with a bright sphere at a random place."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), 0)
    vols = []
    for _ in range(n):
        centre = rng.uniform(6, size - 6, size=3)[:, None, None, None]
        dist = np.sqrt(((grid - centre) ** 2).sum(0))
        vols.append((0.2 + 0.6 * (dist < 6)).astype(np.float32)[None])
    return vols


def test_masked_pretraining_loss_decreases_and_reports_progress():
    calls = []
    enc, head, losses = pretrain(_phantoms(), ARCH, "masked", steps=30, seed=0, patch_size=(16, 16, 16),
                                 lr=3e-3, progress=lambda s, t, d: calls.append((s, t, d["loss"])))
    assert len(losses) == 30 and [c[0] for c in calls] == list(range(1, 31))
    assert all(c[1] == 30 for c in calls) and [c[2] for c in calls] == losses
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert not enc.training and not head.training


def test_same_seed_same_weights_other_seed_differs():
    def run(seed, pretext):
        enc, head, losses = pretrain(_phantoms(2, 32), ARCH, pretext, steps=2, seed=seed, patch_size=(32, 32, 16))
        return {**enc.state_dict(), **{"h." + k: v for k, v in head.state_dict().items()}}, losses

    for pretext in ("voco", "masked"):
        (a, la), (b, lb), (c, _) = run(7, pretext), run(7, pretext), run(8, pretext)
        assert la == lb
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_random_patches_pad_small_volumes():
    vol = np.ones((1, 4, 20, 20), np.float32)
    batch = random_patches([vol], (8, 8, 8), 3, np.random.default_rng(0))
    assert batch.shape == (3, 1, 8, 8, 8) and batch.dtype == np.float32
    assert batch[:, :, 4:].max() == 0.0 and batch[:, :, :4].min() == 1.0


def test_bad_arguments():
    vols = _phantoms(1)
    with pytest.raises(InputError, match="no volumes"):
        pretrain([], ARCH, "masked", 1, 0, (16, 16, 16))
    with pytest.raises(InputError, match="channels"):
        pretrain([np.zeros((2, 16, 16, 16), np.float32)], ARCH, "masked", 1, 0, (16, 16, 16))
    with pytest.raises(InputError, match="patch_size"):
        pretrain(vols, ARCH, "voco", 1, 0, (24, 24, 24))  # voco needs x, y multiples of 16
    with pytest.raises(InputError, match="steps"):
        pretrain(vols, ARCH, "masked", 0, 0, (16, 16, 16))
    with pytest.raises(InputError, match="unknown pretext"):
        pretrain(vols, ARCH, "rotation", 1, 0, (16, 16, 16))
