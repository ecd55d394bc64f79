"""Every GUI handler runs inside an error display, as Slicer's own modules do.

Inside Slicer the display is ``slicer.util.tryWithErrorDisplay(message, waitCursor=...)``: the
user sees ``message`` and the exception text in a dialog, the traceback goes to the application
log. Outside Slicer (tests, stand-alone) a fallback reports ``message`` and the exception through
a callable (the controller's ``prompts.error``). Either way the exception stops there: a Qt slot
or a ``QTimer`` tick that raised would only print a traceback, and a poller must keep polling.

All connections of the module go through ``Guard.connect`` / ``Guard.on_click`` /
``Guard.observe`` (Testing/slicer/test_handlers_wrapped.py checks the source for raw
``.connect(`` / ``AddObserver(`` calls, and that every button of the panels is connected here).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Callable, List, Optional

__all__ = ["Guard", "GUARDED", "LOG"]

LOG = logging.getLogger("MedSeqFT")
#: attribute set on every wrapped handler (its value: the error message)
GUARDED = "__medseqft_guarded__"


class Guard:
    """Wraps handlers in an error display and records what it connected.

    Args:
        report: called with ``"<message>\\n\\n<exception>"`` by the fallback display.
        display: a context-manager factory ``display(message, wait_cursor)``; ``None`` uses the
            fallback. The module sets it to Slicer's ``tryWithErrorDisplay``.

    Attributes:
        buttons: every button connected with ``on_click`` (for the wrapped-handler test).
        handlers: every wrapped handler.
    """

    def __init__(self, report: Optional[Callable[[str], None]] = None,
                 display: Optional[Callable[[str, bool], object]] = None) -> None:
        self.report = report
        self.display = display
        self.buttons: List[object] = []
        self.handlers: List[Callable] = []
        self._observations: List[tuple] = []

    @contextlib.contextmanager
    def _fallback(self, message: str, wait_cursor: bool = False):
        try:
            yield
        except Exception as exc:
            if self.report is not None:
                self.report(f"{message}\n\n{exc}")
            raise

    def wrap(self, message: str, fn: Callable, wait_cursor: bool = False) -> Callable:
        """``fn`` run inside the error display; an exception is shown, logged, and ends there."""
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            display = self.display(message, wait_cursor) if self.display is not None else self._fallback(message, wait_cursor)
            try:
                with display:
                    return fn(*args, **kwargs)
            except Exception:
                LOG.exception(message)  # shown already; the traceback goes to the application log
                return None

        setattr(handler, GUARDED, message)
        self.handlers.append(handler)
        return handler

    def connect(self, signal, message: str, fn: Callable, wait_cursor: bool = False) -> Callable:
        """``signal.connect(wrapped fn)`` for a Qt signal or a plain-Python ``Signal``."""
        handler = self.wrap(message, fn, wait_cursor)
        signal.connect(handler)
        return handler

    def on_click(self, button, message: str, fn: Callable[[], object]) -> Callable:
        """Run ``fn()`` (no arguments) when ``button`` is clicked, with a wait cursor."""
        self.buttons.append(button)
        return self.connect(button.clicked, message, lambda *_: fn(), wait_cursor=True)

    def observe(self, obj, event, message: str, fn: Callable) -> int:
        """``obj.AddObserver(event, wrapped fn)`` (a VTK/MRML event); ``remove_observers`` undoes it."""
        tag = obj.AddObserver(event, self.wrap(message, fn))
        self._observations.append((obj, tag))
        return tag

    def remove_observers(self) -> None:
        for obj, tag in self._observations:
            obj.RemoveObserver(tag)
        self._observations = []
