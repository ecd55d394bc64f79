"""Augmentation: deterministic per seed, every transform exercised, labels stay labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from MedSeqFTLib.data import augment
from MedSeqFTLib.data.augment import Augmenter
from MedSeqFTLib.data.imageio import Geometry
from MedSeqFTLib.data.preprocess import PreparedCase
from MedSeqFTLib.data.sampling import PatchSampler

GEO = Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), (32, 32, 32))


def _case(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(1, 32, 32, 32)).astype(np.float32)
    label = np.zeros((1, 32, 32, 32), np.uint8)
    label[0, 8:20, 10:22, 6:18] = 1
    label[0, 22:26, 22:26, 22:26] = 2
    image[label > 0] += 2.0
    return PreparedCase(image, label, GEO, np.eye(4))


def _sampler(seed, elastic=False):
    return PatchSampler([_case()], (16, 16, 16), 4, 0.5, seed=seed, augment=Augmenter(elastic=elastic))


def test_same_seed_same_batches_other_seed_differs():
    a, b, c = _sampler(5), _sampler(5), _sampler(6)
    for i in range(4):
        x, y = a.batch_at(i), b.batch_at(i)
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
    assert not all(torch.equal(a.batch_at(i)["image"], c.batch_at(i)["image"]) for i in range(4))


def test_augmented_patches_keep_label_values_and_shape():
    batch = _sampler(1).batch_at(0)
    assert batch["image"].shape == (4, 1, 16, 16, 16) and batch["image"].dtype == torch.float32
    assert set(torch.unique(batch["label"]).tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("elastic", [False, True])
def test_every_transform_is_exercised(monkeypatch, elastic):
    """With every probability at 1, each transform of the set runs and changes the patch."""
    monkeypatch.setattr(augment, "PROBABILITIES", {k: 1.0 for k in augment.PROBABILITIES})
    aug = Augmenter(elastic=elastic)
    case = _case()
    rng = np.random.RandomState(0)
    img, lab = aug._spatial(case.image, case.label, (16, 16, 16), (16, 16, 16), rng)
    plain = case.image[:, 8:24, 8:24, 8:24]
    assert img.shape == (1, 16, 16, 16) and not np.allclose(img, plain)  # rotation + scaling happened
    assert set(np.unique(lab)) <= {0.0, 1.0, 2.0}  # nearest-neighbour labels
    transforms = ([aug._elastic] if elastic else []) + list(aug.intensity.transforms)
    names = [type(t).__name__ for t in transforms]
    assert {"RandGaussianNoised", "RandGaussianSmoothd", "RandScaleIntensityd", "RandScaleIntensityFixedMeand",
            "RandSimulateLowResolutiond", "RandAdjustContrastd", "RandFlipd"} <= set(names)
    assert names.count("RandFlipd") == 3 and names.count("RandAdjustContrastd") == 2  # 3 axes; gamma and inverted
    for t in transforms:
        assert t.prob == 1.0, type(t).__name__
        t.set_random_state(seed=int(rng.randint(2**31)))
        data = {"image": img.astype(np.float32).copy(), "label": lab.astype(np.float32).copy()}
        out = t(data)
        assert not np.allclose(np.asarray(out["image"]), img), type(t).__name__  # it changed the patch
    # the whole pipeline, as the sampler calls it, is deterministic for a given generator state
    a = aug(case.image, case.label, (16, 16, 16), (16, 16, 16), np.random.RandomState(3))
    b = aug(case.image, case.label, (16, 16, 16), (16, 16, 16), np.random.RandomState(3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
