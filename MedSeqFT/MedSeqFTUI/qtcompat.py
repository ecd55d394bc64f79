"""``qt`` and ``ctk`` for the panels: Slicer's own inside Slicer, a PySide6 shim elsewhere.

Panel code is written in the subset of the Qt API that both PythonQt and PySide6 accept
(method calls such as ``setText()``/``text()``, ``signal.connect(slot)``, enum values as
class attributes). Import it as ``from MedSeqFTUI.qtcompat import qt, ctk, IN_SLICER``.
"""

from __future__ import annotations

try:  # inside Slicer (PythonQt)
    import ctk  # noqa: F401
    import qt  # noqa: F401

    IN_SLICER = True
except ImportError:  # tests and stand-alone use: PySide6 with the same names
    from . import pyside_shim as qt  # noqa: F401
    from .pyside_shim import ctk  # noqa: F401

    IN_SLICER = False

__all__ = ["qt", "ctk", "IN_SLICER", "get"]


def get(widget, name: str):
    """Read a Qt property portably: ``get(lineEdit, "text")``.

    PythonQt exposes Q_PROPERTYs as attributes (``lineEdit.text`` is a ``str``, calling it
    fails) while PySide6 exposes the getter method (``lineEdit.text()``); this reads either.
    """
    value = getattr(widget, name)
    return value() if callable(value) else value
