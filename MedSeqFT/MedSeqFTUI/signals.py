"""A plain-Python signal: PythonQt custom signals crash, so progress flows through this.

Usage::

    changed = Signal()
    changed.connect(lambda value: print(value))
    changed.emit(42)
"""

from __future__ import annotations

import logging
from typing import Any, Callable, List

__all__ = ["Signal"]

_log = logging.getLogger(__name__)


class Signal:
    """Calls every connected callable, in connection order, with the emitted arguments.

    The panels connect their listeners through ``Guard.connect`` (guard.py), so a listener that
    raises is shown to the user in an error display. As a last resort a slot that still raises
    is logged and skipped, so one broken listener does not silence the others (a GUI timer
    callback must never die half-way).
    """

    def __init__(self) -> None:
        self._slots: List[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        if slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            try:
                slot(*args)
            except Exception:  # a listener bug must not stop the job poller
                _log.exception("slot %r failed", slot)
