"""Helpers for driving the panels on real Qt (PySide6, offscreen): app, clicks, waiting in a
real event loop, the main-thread stall watchdog, screenshots."""

import os
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "MedSeqFT" / "Resources" / "UI" / "MedSeqFT.ui"


def app():
    return QApplication.instance() or QApplication([])


def click(button):
    assert button.isEnabled(), f"{button.text()!r} is disabled"
    QTest.mouseClick(button, Qt.LeftButton)


def click_row(table, row):
    rect = table.visualRect(table.model().index(row, 0))
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())


def wait_until(predicate, timeout_s=60.0, what="condition"):
    """Run the real Qt event loop until ``predicate()`` is true."""
    loop = QEventLoop()
    result = {"ok": False}

    def check():
        if predicate():
            result["ok"] = True
            loop.quit()

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(check)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    timer.start()
    deadline.start(int(timeout_s * 1000))
    check()
    if not result["ok"]:
        loop.exec()
    timer.stop()
    deadline.stop()
    assert result["ok"], f"timed out after {timeout_s} s waiting for {what}"


class StallWatchdog:
    """A 10 ms QTimer on the GUI thread; the longest gap between ticks beyond the period is the
    longest time the main thread was blocked (by our polling, file reading, widget updates)."""

    def __init__(self, period_ms=10):
        self.period_s = period_ms / 1000.0
        self.timer = QTimer()
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self._tick)
        self.worst_s = 0.0
        self.ticks = 0
        self._last = None

    def _tick(self):
        now = time.perf_counter()
        if self._last is not None:
            self.worst_s = max(self.worst_s, now - self._last - self.period_s)
        self._last = now
        self.ticks += 1

    def start(self):
        self._last = None
        self.timer.start()

    def stop(self):
        self.timer.stop()

    @property
    def worst_ms(self):
        return 1000.0 * self.worst_s


def screenshot(widget, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    app().processEvents()
    assert widget.grab().save(str(path)), path
    return path


def build_module(controller):
    """The module's UI (.ui sections) with all panels, as in Slicer's MedSeqFTWidget.setup."""
    from MedSeqFTUI.panels import Panels
    from MedSeqFTUI.qtcompat import qt

    root = qt.loadUI(str(UI_FILE))
    panels = Panels(root, controller)
    root.resize(600, 1700)
    root.show()
    app().processEvents()
    return root, panels
