"""Benchmark statistics: paired per-seed differences against FFT with bootstrap CIs, large vs small classes.

The benchmark pairs its runs by seed (``strategies``: the same seed draws the same task patches
and head initialisation for every strategy), so the natural comparison of strategy S with FFT
is the per-seed difference ``d_k = metric(S, seed k) - metric(FFT, seed k)``.

* **Metrics per (strategy, seed)** (``unit_metrics``): ``final`` = mean over tasks of the final
  model's Dice; ``after`` = mean over tasks of the Dice right after each task was trained;
  ``bwt`` = backward transfer (final minus right-after-training, mean over the earlier tasks;
  parallel strategies never change a finished model, so their BWT is 0 by construction);
  ``large`` / ``small`` = the final Dice averaged over the large / small classes of every task.
* **Large and small classes** (``split_classes``): a class is *small* when the median volume of
  its label over the training cases where it is present (the task fingerprint's
  ``classes.<name>.mm3.median``, written at ``add-task``) is below ``SMALL_CLASS_MM3`` = 5,000 mm^3
  (5 cm^3: e.g. adrenal glands, small tumours, vessels' side branches; a liver or a kidney is
  far above it). A class without a fingerprint volume is left out of both groups.
* **Confidence interval** (``paired_bootstrap``): the 95 % percentile bootstrap of the mean of the
  ``d_k`` over seeds: ``RESAMPLES`` = 10,000 resamples of the seeds with replacement, drawn by
  ``numpy.random.default_rng(BOOTSTRAP_SEED)``, the 2.5th and 97.5th percentiles of the resampled
  means. With fewer than ``FEW_SEEDS`` = 5 seeds the interval is reported with a warning (a
  bootstrap over 2-4 values cannot cover the spread it does not see); with one seed there is no
  interval. **Significant at 95 %** means the interval excludes 0.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["SMALL_CLASS_MM3", "RESAMPLES", "BOOTSTRAP_SEED", "FEW_SEEDS", "METRICS", "split_classes",
           "unit_metrics", "paired_bootstrap", "paired_differences", "significance_line"]

SMALL_CLASS_MM3 = 5000.0
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
FEW_SEEDS = 5
REFERENCE = "fft"
METRICS = {"final": "final average Dice", "after": "average Dice right after training", "bwt": "BWT (Dice)",
           "large": "final Dice, large classes", "small": "final Dice, small classes"}


def split_classes(volumes_mm3: Mapping[str, Optional[float]], threshold_mm3: float = SMALL_CLASS_MM3) -> dict:
    """Split a task's classes into ``{"large": [...], "small": [...]}`` by median volume.

    Args:
        volumes_mm3: class name -> median volume in mm^3 (``None``: unknown, left out).
        threshold_mm3: a class below it is small.

    Raises:
        ValueError: ``threshold_mm3`` not > 0.
    """
    if not threshold_mm3 > 0:
        raise ValueError(f"threshold_mm3 must be > 0, got {threshold_mm3}")
    out: dict = {"large": [], "small": []}
    for name, vol in volumes_mm3.items():
        if vol is None or (isinstance(vol, float) and math.isnan(vol)):
            continue
        out["small" if float(vol) < threshold_mm3 else "large"].append(name)
    return out


def _mean(values) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else None


def unit_metrics(result: Mapping, threshold_mm3: float = SMALL_CLASS_MM3) -> dict:
    """The per-seed metrics of one finished unit (a ``result.json`` of ``benchmark.run``).

    Returns:
        ``{"final", "after", "bwt", "large", "small"}``, each a float or ``None`` (not available:
        e.g. a unit written before per-class Dice was recorded, or a task without small classes).
    """
    tasks = list(result.get("tasks", []))
    final = result.get("final", {})
    after = result.get("after_training", final)
    out = {"final": _mean([final.get(t, {}).get("dice") for t in tasks]),
           "after": _mean([after.get(t, {}).get("dice") for t in tasks])}
    forgetting = result.get("forgetting")
    out["bwt"] = forgetting.get("bwt_dice") if forgetting else (0.0 if result.get("kind") in ("parallel", "peft") else None)
    volumes = result.get("class_volume_mm3") or {}
    for group in ("large", "small"):
        vals = []
        for t in tasks:
            classes = final.get(t, {}).get("classes") or {}
            names = split_classes(volumes.get(t, {}), threshold_mm3)[group]
            vals += [classes.get(n) for n in names]
        out[group] = _mean(vals)
    return out


def paired_bootstrap(differences: Sequence[float], resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     level: float = 0.95) -> dict:
    """Percentile bootstrap CI of the mean of paired differences.

    Args:
        differences: one difference per seed (strategy minus reference).
        resamples: bootstrap resamples.
        seed: ``numpy.random.default_rng`` seed (fixed: the same numbers give the same CI).
        level: coverage of the interval.

    Returns:
        ``{"n", "mean", "sd", "low", "high", "significant", "note"}``; ``low``/``high``/``significant``
        are ``None`` for fewer than two differences; ``note`` warns about few seeds.

    Raises:
        ValueError: no differences, ``resamples`` < 1 or ``level`` outside (0, 1).
    """
    d = np.asarray([float(v) for v in differences], dtype=np.float64)
    if d.size == 0:
        raise ValueError("paired_bootstrap needs at least one difference, got none")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples}, {level}")
    n = int(d.size)
    out = {"n": n, "mean": float(d.mean()), "sd": float(d.std(ddof=1)) if n > 1 else None,
           "low": None, "high": None, "significant": None, "note": ""}
    if n < 2:
        out["note"] = "one seed: no confidence interval"
        return out
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, size=(int(resamples), n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    out["low"], out["high"] = float(low), float(high)
    out["significant"] = bool(low > 0 or high < 0)
    if n < FEW_SEEDS:
        out["note"] = f"only {n} seeds: the bootstrap interval is too narrow to trust (use >= {FEW_SEEDS})"
    return out


def paired_differences(results: Sequence[Mapping], reference: str = REFERENCE,
                       threshold_mm3: float = SMALL_CLASS_MM3, resamples: int = RESAMPLES) -> dict:
    """Per strategy and metric: the per-seed metric, the paired differences to ``reference`` and the CI.

    Args:
        results: finished units (``benchmark.run.load_results``); ``transfer`` units are ignored.
        reference: the strategy every other one is compared with (FFT).
        threshold_mm3: large / small class threshold.
        resamples: bootstrap resamples.

    Returns:
        ``{strategy: {metric: {"values": {seed: v}, "diff": {seed: d} , "ci": paired_bootstrap(...) or None}}}``;
        ``diff``/``ci`` are empty/``None`` for the reference itself and where no seed is shared.
    """
    per: dict = {}
    for r in results:
        if r.get("strategy") == "transfer":
            continue
        per.setdefault(r["strategy"], {})[int(r["seed"])] = unit_metrics(r, threshold_mm3)
    ref = per.get(reference, {})
    out: dict = {}
    for name, seeds in per.items():
        entry = {}
        for metric in METRICS:
            values = {k: m[metric] for k, m in seeds.items() if m[metric] is not None}
            diff = {}
            if name != reference:
                diff = {k: v - ref[k][metric] for k, v in values.items()
                        if k in ref and ref[k][metric] is not None}
            entry[metric] = {"values": values, "diff": diff,
                             "ci": paired_bootstrap(list(diff.values()), resamples=resamples) if diff else None}
        out[name] = entry
    return out


def significance_line(label: str, metric: str, ci: Optional[Mapping], scale: float = 100.0) -> str:
    """One plain sentence: ``"<label> - FFT, <metric>: +1.2 points [95 % CI -0.3, +2.6]; significant at 95 %: no (CI includes 0)"``."""
    what = METRICS.get(metric, metric)
    if not ci:
        return f"{label} − FFT, {what}: no paired seeds"
    head = f"{label} − FFT, {what}: {ci['mean'] * scale:+.1f} points over {ci['n']} paired seed(s)"
    if ci["low"] is None:
        return f"{head}; significant at 95 %: not testable ({ci['note']})"
    verdict = "yes (CI excludes 0)" if ci["significant"] else "no (CI includes 0)"
    note = f" — {ci['note']}" if ci["note"] else ""
    return (f"{head} [95 % CI {ci['low'] * scale:+.1f}, {ci['high'] * scale:+.1f}]; "
            f"significant at 95 %: {verdict}{note}")
