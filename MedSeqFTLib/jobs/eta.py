"""Time-left estimates from measured step durations, not guesses.

The estimate for the running stage is an exponentially weighted mean of its recent step
durations times the steps left in it. When the caller announced the remaining stages
(``Reporter.plan``), their totals are added, each timed with the measured step time of a
stage of the same name (``kd_fft`` of task 3 is timed like ``kd_fft`` of task 2) or, before
any such stage ran, with the current stage's step time.

The runner announces every training stage still to come (``sequence.runner.stage_plan``),
including task 1's LoRA-KD stage (``retention.first_task_lora``); the merge is not announced
(one step, no measurable rate).

Only time between two consecutive progress reports of the same stage counts, so the gap
before the first step (data loading, model building) and a resumed stage's earlier steps
do not distort the rate.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional, Sequence

__all__ = ["EtaEstimator"]


class EtaEstimator:
    """Per-stage step-time tracker.

    Args:
        alpha: weight of the newest step duration in the exponentially weighted mean
            (0.1 ≈ the last ~20 steps dominate).
        clock: monotonic time source (tests pass a fake one).
    """

    def __init__(self, alpha: float = 0.1, clock=time.monotonic) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.clock = clock
        self._key: Optional[tuple] = None
        self._last_t: Optional[float] = None
        self._last_step: Optional[int] = None
        self._step = 0
        self._total = 0
        self._rate: dict[str, float] = {}      # stage name -> EWMA seconds per step
        self._plan: list[tuple] = []           # [(stage, task, total)] still to come

    def plan(self, stages: Iterable[Sequence]) -> None:
        """Announce the stages still to run after the current one, in order.

        Args:
            stages: ``(stage, task, total)`` triples. A stage in the plan that starts
                reporting is removed from it together with every stage before it.
        """
        self._plan = [(str(s), t, int(n)) for s, t, n in stages]

    def update(self, stage: str, task: Optional[str], step: int, total: int) -> Optional[float]:
        """Record a progress report and return the seconds left (``None`` = not yet known)."""
        now = self.clock()
        key = (stage, task)
        if key != self._key:
            self._key, self._last_t, self._last_step = key, now, int(step)
            for i, (s, t, _n) in enumerate(self._plan):
                if (s, t) == key:
                    del self._plan[: i + 1]
                    break
        elif step > self._last_step:
            per_step = (now - self._last_t) / (step - self._last_step)
            old = self._rate.get(stage)
            self._rate[stage] = per_step if old is None else (1 - self.alpha) * old + self.alpha * per_step
            self._last_t, self._last_step = now, int(step)
        self._step, self._total = int(step), int(total)
        return self.eta_s()

    def seconds_per_step(self, stage: str) -> Optional[float]:
        return self._rate.get(stage)

    def eta_s(self) -> Optional[float]:
        """Seconds left in the current stage plus the planned ones; ``None`` before a rate is known."""
        if self._key is None:
            return None
        current = self._rate.get(self._key[0])
        if current is None:
            return None
        left = max(0, self._total - self._step) * current
        for stage, _task, total in self._plan:
            left += total * self._rate.get(stage, current)
        return left
