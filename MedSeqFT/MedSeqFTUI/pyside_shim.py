"""A PySide6 stand-in for Slicer's ``qt`` and ``ctk`` modules (used outside Slicer only).

It re-exports the PySide6 classes the panels use under their PythonQt names and adds small,
explicit fallbacks for what PySide6 lacks:

- ``ctk.ctkCollapsibleButton`` -> a checkable ``QGroupBox`` whose check box collapses it
  (``setText``/``text``/``setCollapsed`` and the Qt property ``collapsed`` as on the CTK
  widget, so ``setProperty("collapsed", True)`` works in both).
- ``loadUI(path)`` -> ``QUiLoader`` after turning ``ctkCollapsibleButton`` into that
  ``QGroupBox`` in the ``.ui`` XML.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Property, QBuffer, QByteArray, QIODevice, QSize, Qt, QTimer, QElapsedTimer  # noqa: F401
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPixmap  # noqa: F401
from PySide6.QtWidgets import (  # noqa: F401
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


class ctkCollapsibleButton(QGroupBox):
    """Fallback for CTK's collapsible section: a checkable group box that hides its content."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setCheckable(True)
        self.setChecked(True)
        self.toggled.connect(self._on_toggled)

    def setText(self, text):
        self.setTitle(text)

    def text(self):
        return self.title()

    def setCollapsed(self, collapsed):
        self.setChecked(not collapsed)

    def _collapsed(self):
        return not self.isChecked()

    collapsed = Property(bool, _collapsed, setCollapsed)

    def _on_toggled(self, on):
        for child in self.findChildren(QWidget):
            if child.parent() is self:
                child.setVisible(on)


class _Ctk:
    ctkCollapsibleButton = ctkCollapsibleButton


ctk = _Ctk()


def loadUI(path):
    """Load a Slicer ``.ui`` file with PySide6 (CTK collapsible buttons become group boxes)."""
    from PySide6.QtUiTools import QUiLoader

    xml = Path(path).read_text(encoding="utf-8")
    xml = xml.replace('class="ctkCollapsibleButton"', 'class="QGroupBox"')
    xml = re.sub(r"<customwidgets>.*?</customwidgets>", "", xml, flags=re.S)
    # CTK's "text" property is QGroupBox's "title"
    xml = re.sub(r'(<widget class="QGroupBox"[^>]*>\s*<property name=")text(")', r"\1title\2", xml)
    data = QByteArray(xml.encode("utf-8"))
    buf = QBuffer(data)
    buf.open(QIODevice.ReadOnly)
    widget = QUiLoader().load(buf)
    buf.close()
    return widget
