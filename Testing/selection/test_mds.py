"""MDS scoring pieces: input fitting, seeds, random ablation, real-pretext scores, manifest."""

import json

import numpy as np
import pytest
import torch

from MedSeqFTLib.selection.manifest import build_manifest, read_manifest, write_manifest
from MedSeqFTLib.selection.mds import case_seed, fit_volume, random_selection, rank_cases, resolve_device, score_volumes
from MedSeqFTLib.errors import InputError


def test_fit_volume_crops_centre_and_pads_with_minimum():
    img = np.arange(2 * 10 * 6 * 5, dtype=np.float32).reshape(2, 10, 6, 5) + 3.0
    out = fit_volume(img, (8, 8, 5))
    assert out.shape == (2, 8, 8, 5)
    # x: 10 -> 8 keeps indices 1..8; y: 6 -> 8 pads one row each side with the minimum (3.0)
    np.testing.assert_array_equal(out[:, :, 1:7, :], img[:, 1:9, :, :])
    assert np.all(out[:, :, 0, :] == 3.0) and np.all(out[:, :, 7, :] == 3.0)
    # odd padding puts the extra voxel after
    out2 = fit_volume(img, (10, 9, 5))
    np.testing.assert_array_equal(out2[:, :, 1:7, :], img)
    assert np.all(out2[:, :, 7:, :] == 3.0) and np.all(out2[:, :, :1, :] == 3.0)
    with pytest.raises(ValueError):
        fit_volume(img[0], (8, 8, 8))


def test_case_seed_stable_and_distinct():
    assert case_seed(0, "a") == case_seed(0, "a")
    assert len({case_seed(0, "a"), case_seed(1, "a"), case_seed(0, "b")}) == 3
    assert 0 <= case_seed(5, "x") < 2 ** 63


def test_random_selection_is_seeded_order_free_and_uniform():
    ids = [f"c{i}" for i in range(10)]
    a = random_selection(ids, 3, seed=1, task="t")
    assert a == random_selection(list(reversed(ids)), 3, seed=1, task="t")
    assert len(set(a)) == 3 and set(a) <= set(ids)
    picks = [tuple(random_selection(ids, 3, seed=s, task="t")) for s in range(300)]
    assert len(set(picks)) > 100
    counts = np.bincount([int(c[1:]) for p in picks for c in p], minlength=10)
    assert counts.min() > 50  # each case ~90 times of 900 draws


def test_rank_cases_ties_by_id():
    assert rank_cases(["b", "a", "c"], np.array([1.0, 1.0, 0.5])) == ["c", "a", "b"]


def test_score_volumes_with_real_model_matches_direct_pretext_calls():
    from MedSeqFTLib.config import ArchConfig
    from MedSeqFTLib.models.registry import build_encoder, build_ssl_head
    from MedSeqFTLib.models.ssl import get_pretext

    torch.manual_seed(0)
    arch = ArchConfig(feature_size=4)
    enc, head, pretext = build_encoder(arch).eval(), build_ssl_head(arch, "masked").eval(), get_pretext("masked")
    rng = np.random.default_rng(0)
    vols = [rng.normal(0, s, (1, 16, 16, 16)).astype(np.float32) for s in (0.5, 1.0, 2.0)]
    ids = ["x", "y", "z"]
    res = score_volumes(vols, ids, enc, head, pretext, runs=6, k=1, views_per_batch=4, seed=9, adaptive=False)
    assert res.runs.counts.tolist() == [6, 6, 6] and res.batched_calls == 6
    with torch.no_grad():
        g = torch.Generator().manual_seed(case_seed(9, "z"))
        t = torch.from_numpy(vols[2])[None]
        direct = torch.cat([pretext.loss(enc, head, t, g, 4), pretext.loss(enc, head, t, g, 2)], dim=1).numpy().ravel()
    np.testing.assert_allclose(res.runs.values(2), direct, rtol=1e-5)
    assert res.runs.stds[2] > 0  # the masks make the loss stochastic


def test_resolve_device():
    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(InputError):
        resolve_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(InputError):
            resolve_device("cuda")


def test_manifest_round_trip_and_rounding(tmp_path):
    m = build_manifest(task="t", method="mds", seed=1, k=1, runs_requested=4, adaptive=True, pretext="masked",
                       case_ids=["a", "b"], means=[0.123456789123, 0.5], stds=[0.01, 0.02], counts=[4, 4],
                       selected=["a"], forward_passes=8)
    assert m["cases"][0]["mean_loss"] == 0.1234568
    write_manifest(tmp_path, m, {"wall_s": 1.0})
    assert read_manifest(tmp_path) == json.loads((tmp_path / "buffer.json").read_text())
    assert json.loads((tmp_path / "buffer_timing.json").read_text()) == {"wall_s": 1.0}
    (tmp_path / "buffer.json").write_text('{"method": "mds"}')
    with pytest.raises(InputError, match="missing"):
        read_manifest(tmp_path)
