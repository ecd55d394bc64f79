"""FFT's plateau curve: test Dice of parallel FFT trained with several budgets (``--curve 100,200,400,800``).

Each budget B is a complete parallel-FFT run of B steps per task (the full learning-rate schedule
of that length, exactly the ``fft`` strategy with ``iterations = B``), one per seed, under
``OUT/curve/b<B>/runs/fft/seed<k>/``; a finished unit is reused. A snapshot half-way through a
longer run would not answer the question, because the decaying schedule makes an early
checkpoint differ from a run that ends there. The budget at which the average test Dice stops
rising (within the seeds' spread) is the one the strategies should be compared at; the table
and ``fft_curve.png`` show it. The test split is the only held-out split the benchmark has, so
this is a *test*-set curve: pick the budget once, before comparing methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from ..io.atomic import read_json

__all__ = ["parse_budgets", "run_curve", "load_curve", "curve_dir"]


def parse_budgets(text: Optional[str]) -> list[int]:
    """``"100,200,400"`` -> ``[100, 200, 400]`` (sorted, unique); ``None``/empty -> ``[]``.

    Raises:
        InputError: a value that is not a positive integer.
    """
    if not text or not text.strip():
        return []
    out = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise InputError("--curve", f"budgets must be positive integers separated by commas, got {part!r}")
        out.add(int(part))
    return sorted(out)


def curve_dir(out: Path, budget: int) -> Path:
    return Path(out) / "curve" / f"b{int(budget)}"


def run_curve(out: Path, budgets: Sequence[int], seeds: Sequence[int], settings, m0: Path, datasets: list,
              reporter, device: str) -> dict:
    """Run (or reuse) parallel FFT for every budget and seed; returns ``{str(budget): [unit results]}``."""
    from .run import RESULT_FILE, run_unit, unit_dir
    from .strategies import STRATEGIES

    curve = {}
    for b in budgets:
        folder = curve_dir(out, b)
        for seed in seeds:
            if not (unit_dir(folder, "fft", seed) / RESULT_FILE).is_file():
                reporter.log(f"curve: FFT with {b} steps per task, seed {seed}")
                run_unit(folder, STRATEGIES["fft"], int(seed), settings.replace(iterations=int(b)), m0, list(datasets),
                         None, reporter, device)
        curve[str(int(b))] = [r for r in _load(folder) if r["seed"] in {int(s) for s in seeds}]
    return curve


def _load(folder: Path) -> list:
    from .run import RESULT_FILE

    return [read_json(p) for p in sorted((Path(folder) / "runs" / "fft").glob(f"seed*/{RESULT_FILE}"))]


def load_curve(out: Path) -> dict:
    """Every budget's finished FFT units found under ``OUT/curve`` (for ``--tables-only``)."""
    out = Path(out)
    curve = {}
    for folder in sorted((out / "curve").glob("b*")):
        if folder.name[1:].isdigit():
            found = _load(folder)
            if found:
                curve[folder.name[1:]] = found
    return curve
