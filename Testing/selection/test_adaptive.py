"""Adaptive MDS stopping: boundary, the elimination rule, and agreement with fixed R."""

import numpy as np
import pytest
import torch

from MedSeqFTLib.selection.adaptive import AdaptiveRule, CaseRuns, active_mask, boundary
from MedSeqFTLib.selection.mds import rank_cases, score_volumes


class GaussianPretext:
    """Loss of a view = the volume's mean intensity + sigma * N(0, 1) from the generator.

    A controlled stand-in for an SSL loss: each case's true mean loss is known exactly.
    """

    def __init__(self, sigma):
        self.sigma = sigma

    def loss(self, encoder, head, volumes, generator, n_views):
        b = volumes.shape[0]
        noise = torch.randn((b, n_views), generator=generator)
        return volumes.flatten(1).mean(1, keepdim=True) + self.sigma * noise


def _cases(means):
    vols = [np.full((1, 4, 4, 4), m, dtype=np.float32) for m in means]
    ids = [f"case{i:02d}" for i in range(len(means))]
    return vols, ids


def _score(means, sigma, runs, k, adaptive, views=8, seed=3, rule=None):
    vols, ids = _cases(means)
    res = score_volumes(vols, ids, torch.nn.Identity(), torch.nn.Identity(), GaussianPretext(sigma), runs=runs, k=k,
                        views_per_batch=views, seed=seed, adaptive=adaptive, rule=rule)
    return ids, res


def test_boundary_is_midpoint_between_kth_and_next():
    assert boundary(np.array([5.0, 1.0, 3.0, 2.0]), 2) == pytest.approx(2.5)
    assert boundary(np.array([1.0, 2.0]), 2) == float("inf")
    assert boundary(np.array([1.0, 2.0]), 0) == float("-inf")


def test_active_mask_rule():
    runs = CaseRuns(3)
    rule = AdaptiveRule(z=2.0, min_runs=4, tol=0.0)
    runs.add(0, [1.0, 1.1, 0.9, 1.0])      # far below the boundary
    runs.add(1, [1.0, 3.0, 0.4, 2.6])      # noisy: straddles it
    runs.add(2, [2.2, 2.3])                # below min_runs -> always active first
    assert active_mask(runs, 1, 100, rule).tolist() == [False, False, True]
    runs.add(2, [2.2, 2.3])
    b = boundary(runs.means, 1)
    half = 2.0 * runs.stds / np.sqrt(runs.counts)
    expected = np.abs(runs.means - b) <= half
    assert active_mask(runs, 1, 100, rule).tolist() == expected.tolist()
    assert expected.tolist() == [False, True, False]
    # the run budget stops a case even if undecided
    assert active_mask(runs, 1, 4, rule).tolist() == [False, False, False]
    # a tolerance wider than the interval stops it as well
    assert not active_mask(runs, 1, 100, AdaptiveRule(z=2.0, min_runs=4, tol=10.0)).any()
    # tol is relative to the range of the means: case 1's half-width 1.25 vs 0.6 * range (1.25)
    assert active_mask(runs, 1, 100, AdaptiveRule(z=2.0, min_runs=4, tol=0.6)).tolist() == [False, True, False]
    assert active_mask(runs, 1, 100, AdaptiveRule(z=2.0, min_runs=4, tol=1.0)).tolist() == [False, False, False]


def test_rule_validation():
    with pytest.raises(ValueError):
        AdaptiveRule(min_runs=1)
    with pytest.raises(ValueError):
        AdaptiveRule(z=0)


def test_fixed_runs_every_case_r_times_and_means_match_direct_computation():
    ids, res = _score([0.0, 1.0, 2.0], sigma=0.5, runs=20, k=1, adaptive=False, views=8)
    assert res.runs.counts.tolist() == [20, 20, 20]
    assert res.forward_passes == 60
    assert res.batched_calls == 9  # rounds of 8, 8, 4 per case
    # independent recomputation of case 1's runs from its own seeded generator
    from MedSeqFTLib.selection.mds import case_seed

    g = torch.Generator().manual_seed(case_seed(3, ids[1]))
    draws = torch.cat([torch.randn((1, m), generator=g) for m in (8, 8, 4)], dim=1).numpy().ravel()
    np.testing.assert_allclose(res.runs.values(1), 1.0 + 0.5 * draws, rtol=1e-6)


def test_adaptive_runs_are_a_prefix_of_fixed_runs_and_select_the_same_top_k():
    true = np.linspace(0.0, 3.0, 16)
    ids, fixed = _score(true, sigma=1.0, runs=400, k=4, adaptive=False)
    ids, adapt = _score(true, sigma=1.0, runs=400, k=4, adaptive=True)
    for i in range(len(ids)):
        n = adapt.runs.counts[i]
        np.testing.assert_array_equal(adapt.runs.values(i), fixed.runs.values(i)[:n])
    top_fixed = set(rank_cases(ids, fixed.runs.means)[:4])
    top_adapt = set(rank_cases(ids, adapt.runs.means)[:4])
    assert top_adapt == top_fixed == set(ids[:4])
    assert adapt.forward_passes < fixed.forward_passes / 2
    # cases far from the boundary stop at min_runs; the ones next to it get more
    counts = adapt.runs.counts
    assert counts[-1] == AdaptiveRule().min_runs
    assert counts[3] > counts[-1] and counts[4] > counts[-1]


def test_adaptive_with_k_equal_n_only_does_minimum_runs():
    ids, res = _score([0.0, 1.0], sigma=1.0, runs=100, k=2, adaptive=True, rule=AdaptiveRule(min_runs=8))
    assert res.runs.counts.tolist() == [8, 8]


def test_score_volumes_is_deterministic_and_seed_dependent():
    _, a = _score([0.0, 1.0], sigma=1.0, runs=16, k=1, adaptive=False, seed=1)
    _, b = _score([0.0, 1.0], sigma=1.0, runs=16, k=1, adaptive=False, seed=1)
    _, c = _score([0.0, 1.0], sigma=1.0, runs=16, k=1, adaptive=False, seed=2)
    np.testing.assert_array_equal(a.runs.means, b.runs.means)
    assert not np.array_equal(a.runs.means, c.runs.means)


def test_score_volumes_rejects_mismatched_inputs():
    vols, ids = _cases([0.0, 1.0])
    with pytest.raises(ValueError):
        score_volumes(vols, ids[:1], None, None, GaussianPretext(1.0), runs=4, k=1, views_per_batch=2, seed=0)
    with pytest.raises(ValueError):
        score_volumes(vols, ids, None, None, GaussianPretext(1.0), runs=0, k=1, views_per_batch=2, seed=0)


def test_adaptive_rule_is_scale_free():
    true = np.linspace(0.0, 3.0, 12)
    _, a = _score(true, sigma=1.0, runs=300, k=3, adaptive=True)
    _, b = _score(true * 10.0, sigma=10.0, runs=300, k=3, adaptive=True)
    np.testing.assert_array_equal(a.runs.counts, b.runs.counts)
