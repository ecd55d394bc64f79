"""Patch sampling: foreground balance, determinism, shapes, unlabelled patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from MedSeqFTLib.data.imageio import Geometry
from MedSeqFTLib.data.preprocess import PreparedCase
from MedSeqFTLib.data.sampling import PatchSampler, sample_patches

GEO = Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), (40, 36, 30))


def _cases(n: int = 3, shape=(40, 36, 30), empty: bool = False) -> list:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.normal(size=(1,) + shape).astype(np.float32)
        label = np.zeros((1,) + shape, np.uint8)
        if not empty:
            # a 4x4x3 object (0.04% of the volume): uniform sampling would almost never centre on it
            label[0, 18 + i:22 + i, 16:20, 13:16] = 1 + i % 2
        out.append(PreparedCase(image, label, GEO, np.eye(4)))
    return out


@pytest.mark.parametrize("pos_fraction", [0.0, 0.3, 0.8])
def test_foreground_share_matches_pos_fraction(pos_fraction):
    sampler = PatchSampler(_cases(), (16, 16, 16), batch_size=8, pos_fraction=pos_fraction, seed=3)
    n_batches = 40
    hits = []
    for _ in range(n_batches):
        batch = sampler.next_batch()
        # a centre on foreground puts foreground at the patch centre (index size // 2)
        hits.extend((batch["label"][:, 0, 8, 8, 8] > 0).tolist())
    share = float(np.mean(hits))
    n = len(hits)
    # binomial standard error; background centres never land on the tiny object
    tolerance = 4 * np.sqrt(max(pos_fraction * (1 - pos_fraction), 1e-4) / n)
    assert abs(share - pos_fraction) <= tolerance + 1e-9, (share, pos_fraction)


def test_batches_shapes_types_and_content():
    cases = _cases()
    sampler = PatchSampler(cases, (16, 12, 8), batch_size=4, pos_fraction=1.0, seed=0)
    batch = next(iter(sampler))
    assert batch["image"].shape == (4, 1, 16, 12, 8) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (4, 1, 16, 12, 8) and batch["label"].dtype == torch.int64
    assert set(torch.unique(batch["label"]).tolist()) <= {0, 1, 2}
    # each patch is a real crop of one of the cases: find it by brute force
    for img in batch["image"][:, 0].numpy():
        found = any(
            np.array_equal(c.image[0, x:x + 16, y:y + 12, z:z + 8], img)
            for c in cases for x in range(40 - 15) for y in range(36 - 11) for z in range(30 - 7)
            if c.image[0, x, y, z] == img[0, 0, 0]
        )
        assert found


def test_same_seed_same_batches_other_seed_differs():
    a = PatchSampler(_cases(), (16, 16, 16), 2, 0.5, seed=7)
    b = PatchSampler(_cases(), (16, 16, 16), 2, 0.5, seed=7)
    c = PatchSampler(_cases(), (16, 16, 16), 2, 0.5, seed=8)
    batches_a = [a.next_batch() for _ in range(5)]
    assert all(torch.equal(x["image"], b.next_batch()["image"]) for x in batches_a)
    assert not all(torch.equal(x["image"], c.next_batch()["image"]) for x in batches_a)


def test_small_volume_is_padded_and_empty_label_works():
    sampler = PatchSampler(_cases(1, shape=(10, 12, 9), empty=True), (16, 16, 16), 3, 0.9, seed=0)
    batch = sampler.next_batch()
    assert batch["image"].shape == (3, 1, 16, 16, 16)
    assert int(batch["label"].sum()) == 0


def test_sample_patches_unlabelled():
    arrays = [np.arange(2 * 20 * 18 * 16, dtype=np.float32).reshape(2, 20, 18, 16) + 1e5 * i for i in range(3)]
    patches = sample_patches(arrays, (8, 8, 8), 12, seed=1)
    assert patches.shape == (12, 2, 8, 8, 8) and patches.dtype == torch.float32
    assert torch.equal(patches, sample_patches(arrays, (8, 8, 8), 12, seed=1))
    assert not torch.equal(patches, sample_patches(arrays, (8, 8, 8), 12, seed=2))
    # patches are contiguous crops: along z the values step by 1
    assert torch.all(patches[:, :, :, :, 1:] - patches[:, :, :, :, :-1] == 1)
    assert len({int(p[0, 0, 0, 0]) // 100000 for p in patches}) > 1  # several volumes used
    assert sample_patches(_cases(1), (8, 8, 8), 2, seed=0).shape == (2, 1, 8, 8, 8)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one case"):
        PatchSampler([], (8, 8, 8), 1)
    with pytest.raises(ValueError, match="pos_fraction"):
        PatchSampler(_cases(1), (8, 8, 8), 1, pos_fraction=1.5)
    unlabelled = PreparedCase(np.zeros((1, 8, 8, 8), np.float32), None, GEO, np.eye(4))
    with pytest.raises(ValueError, match="no label"):
        PatchSampler([unlabelled], (8, 8, 8), 1)
    with pytest.raises(ValueError, match="patch_size"):
        sample_patches([np.zeros((1, 8, 8, 8))], (8, 8), 1)
    with pytest.raises(ValueError, match="different channel counts"):
        sample_patches([np.zeros((1, 8, 8, 8)), np.zeros((2, 8, 8, 8))], (4, 4, 4), 1)


def test_class_aware_centres_small_and_large_class_equally():
    """One class 100x smaller than another is the centre of about as many foreground patches."""
    shape = (60, 60, 60)
    label = np.zeros((1,) + shape, np.uint8)
    label[0, 5:45, 5:45, 5:30] = 1  # 40 000 voxels
    label[0, 50:58, 50:55, 50:60] = 2  # 400 voxels: 100x smaller
    case = PreparedCase(np.zeros((1,) + shape, np.float32), label, GEO, np.eye(4))
    assert (label == 1).sum() == 100 * (label == 2).sum()
    sampler = PatchSampler([case], (16, 16, 16), batch_size=10, pos_fraction=0.5, seed=11)
    centres = torch.cat([sampler.batch_at(i)["centre_class"] for i in range(100)])  # 1,000 patches
    fg = centres[centres > 0]
    share_small = float((fg == 2).float().mean())
    assert 400 < len(fg) < 600  # pos_fraction 0.5 of 1,000 patches
    assert abs(share_small - 0.5) < 0.06, share_small  # ~4 binomial standard errors
    # and the centre really lies on that class: the patch centre voxel has the chosen label
    batch = sampler.batch_at(3)
    for label_patch, cls in zip(batch["label"], batch["centre_class"]):
        if cls > 0:
            assert int(label_patch[0, 8, 8, 8]) == int(cls)


def test_batch_depends_only_on_seed_and_index():
    a = PatchSampler(_cases(), (16, 16, 16), 2, 0.5, seed=7)
    b = PatchSampler(_cases(), (16, 16, 16), 2, 0.5, seed=7)
    later = [a.next_batch()["image"] for _ in range(6)][5]
    assert torch.equal(b.batch_at(5)["image"], later)  # no need to draw batches 0..4 first


def test_batch_stream_with_workers_equals_inline():
    from MedSeqFTLib.retention.batches import BatchStream

    sampler = PatchSampler(_cases(), (16, 16, 16), 2, 0.5, seed=4)
    inline = BatchStream(sampler, start=3, workers=0)
    workers = BatchStream(sampler, start=3, workers=2)
    try:
        for _ in range(5):
            x, y = inline.next_batch(), workers.next_batch()
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
    finally:
        workers.close()
