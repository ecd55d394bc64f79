"""Adaptive stopping for MDS scoring: successive elimination around the K-th boundary.

MDS only needs to know which K cases have the lowest mean SSL loss, not every mean to the
paper's 1000-run precision. After ``min_runs`` runs of every case, a case keeps being sampled
only while its confidence interval ``mean ± z * std / sqrt(n)`` still contains the *boundary*
``b`` = the midpoint between the K-th and the (K+1)-th smallest current means. A case whose
interval lies wholly below ``b`` is confidently in the buffer, wholly above confidently out;
either way more runs would not change the selection. The boundary moves as means sharpen, so
every case is re-checked after every round (a case can become active again). A case also
stops when it reaches the run budget ``max_runs`` or when its interval is narrower than
``± tol * (range of the current case means)``: an *indifference zone* (Bechhofer's
ranking-and-selection idea) -- cases whose scores differ by less than a few per cent of the
task's score range count as tied, and resolving such a tie is not worth hundreds of runs
(``tol = 0`` disables this and only the budget stops boundary cases).

This module is pure NumPy; ``mds.score_volumes`` drives it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["AdaptiveRule", "CaseRuns", "boundary", "active_mask"]


@dataclass(frozen=True)
class AdaptiveRule:
    """When to stop sampling a case.

    Attributes:
        z: half-width of the confidence interval in standard errors (2.5 ~ 98.8% two-sided
            for one case).
        min_runs: runs every case gets before any may stop (std needs a few samples; the
            means of cases far from the boundary rest on this many runs).
        tol: indifference zone as a fraction of the range (max - min) of the current case
            means: a case stops once ``z * std / sqrt(n) <= tol * range``; 0 = never.

    The defaults were chosen with ``python -m MedSeqFTLib.selection.benchmark`` (see
    docs/selection.md).
    """

    z: float = 2.5
    min_runs: int = 24
    tol: float = 0.05

    def __post_init__(self):
        if not self.z > 0:
            raise ValueError(f"AdaptiveRule.z must be > 0, got {self.z}")
        if int(self.min_runs) < 2:
            raise ValueError(f"AdaptiveRule.min_runs must be >= 2 (a std needs two runs), got {self.min_runs}")
        if not self.tol >= 0:
            raise ValueError(f"AdaptiveRule.tol must be >= 0, got {self.tol}")

    def to_dict(self) -> dict:
        return asdict(self)


class CaseRuns:
    """The loss of every stochastic run of every case (kept whole: N * R floats is small)."""

    def __init__(self, n_cases: int) -> None:
        self._runs: list[list[float]] = [[] for _ in range(int(n_cases))]

    def add(self, case: int, losses) -> None:
        self._runs[case].extend(float(v) for v in np.asarray(losses, dtype=np.float64).ravel())

    def values(self, case: int) -> np.ndarray:
        return np.asarray(self._runs[case], dtype=np.float64)

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(r) for r in self._runs], dtype=np.int64)

    @property
    def means(self) -> np.ndarray:
        """(N,) mean loss per case; NaN for a case without runs."""
        return np.array([np.mean(r) if r else np.nan for r in self._runs], dtype=np.float64)

    @property
    def stds(self) -> np.ndarray:
        """(N,) sample std (ddof=1) per case; 0 for fewer than two runs."""
        return np.array([np.std(r, ddof=1) if len(r) > 1 else 0.0 for r in self._runs], dtype=np.float64)


def boundary(means: np.ndarray, k: int) -> float:
    """Midpoint between the k-th and (k+1)-th smallest of ``means`` (shape (N,)).

    Returns ``inf`` when ``k >= N`` (every case is selected, nothing to separate) and
    ``-inf`` when ``k <= 0``.
    """
    means = np.sort(np.asarray(means, dtype=np.float64))
    if k >= len(means):
        return float("inf")
    if k <= 0:
        return float("-inf")
    return float(0.5 * (means[k - 1] + means[k]))


def active_mask(runs: CaseRuns, k: int, max_runs: int, rule: AdaptiveRule) -> np.ndarray:
    """(N,) bool: the cases that need another round under ``rule`` (see the module doc).

    A case with fewer than ``rule.min_runs`` runs (capped at ``max_runs``) is always active;
    a case with ``max_runs`` runs never is.
    """
    counts = runs.counts
    floor = min(int(rule.min_runs), int(max_runs))
    if np.any(counts < floor):
        return counts < floor
    b = boundary(runs.means, k)
    if not np.isfinite(b):
        return np.zeros(len(counts), dtype=bool)
    means = runs.means
    half = rule.z * runs.stds / np.sqrt(np.maximum(counts, 1))
    undecided = np.abs(means - b) <= half
    zone = rule.tol * float(np.ptp(means))
    return undecided & (half > zone) & (counts < int(max_runs))
