"""A PySide6 stand-in for Slicer's ``qt`` and ``ctk`` modules (used outside Slicer only).

It re-exports the PySide6 classes the panels use under their PythonQt names and adds small,
explicit fallbacks for what PySide6 lacks:

- ``ctk.ctkCollapsibleButton`` -> a checkable ``QGroupBox`` whose check box collapses it
  (``setText``/``text``/``setCollapsed`` and the Qt property ``collapsed`` as on the CTK
  widget, so ``setProperty("collapsed", True)`` works in both).
- ``loadUI(path)`` -> ``QUiLoader`` after turning ``ctkCollapsibleButton`` into that
  ``QGroupBox`` in the ``.ui`` XML.
- ``qMRMLNodeComboBox`` -> a ``QComboBox`` that lists the nodes of a real MRML scene (the
  ``slicer-core`` wheel) by node ID and follows the scene's node-added/removed and close events,
  with the attributes (``nodeTypes``, ``noneEnabled``, ``showChildNodeTypes`` ...) and methods
  (``setMRMLScene``, ``currentNode``, ``currentNodeID``, ``setCurrentNode``) and the
  ``currentNodeChanged`` signal of Slicer's widget.
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path

from PySide6.QtCore import Property, QBuffer, Signal, QByteArray, QIODevice, QSize, Qt, QTimer, QElapsedTimer  # noqa: F401
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


class qMRMLNodeComboBox(QComboBox):
    """Fallback for Slicer's node selector: items are scene nodes, identified by node ID.

    Set the attributes first, then ``setMRMLScene(scene)``. Renaming a node does not refresh
    the item text here (Slicer's widget does); adding, removing and closing the scene do.
    """

    currentNodeChanged = Signal(object)   # the node, or None
    currentNodeIDChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.nodeTypes = []
        self.noneEnabled = False
        self.noneDisplay = "None"
        self.showHidden = False
        self.showChildNodeTypes = True
        self.addEnabled = self.removeEnabled = self.renameEnabled = self.editEnabled = False
        self.selectNodeUponCreation = True
        self._scene = None
        self._tags = []
        self._current_id = ""
        self.currentIndexChanged.connect(self._on_index_changed)

    def mrmlScene(self):
        return self._scene

    def setMRMLScene(self, scene):
        if self._scene is not None:
            for tag in self._tags:
                self._scene.RemoveObserver(tag)
        self._scene, self._tags = scene, []
        if scene is not None:
            # a weak reference: the scene must not keep this widget alive (a VTK observer is
            # invisible to Python's garbage collector)
            me = weakref.ref(self)
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent):
                self._tags.append(scene.AddObserver(event, lambda *_: me() is not None and me()._rebuild()))
        self._rebuild()

    def _accepts(self, node) -> bool:
        if not self.showHidden and node.GetHideFromEditors():
            return False
        if self.showChildNodeTypes:
            return any(node.IsA(t) for t in self.nodeTypes)
        return node.GetClassName() in self.nodeTypes

    def _nodes(self):
        if self._scene is None:
            return []
        out = []
        for i in range(self._scene.GetNumberOfNodes()):
            node = self._scene.GetNthNode(i)
            if node is not None and self._accepts(node):
                out.append(node)
        return out

    def _rebuild(self):
        previous = self._current_id
        self.blockSignals(True)
        self.clear()
        if self.noneEnabled:
            self.addItem(self.noneDisplay, "")
        for node in self._nodes():
            self.addItem(node.GetName(), node.GetID())
        ids = [self.itemData(i) for i in range(self.count())]
        if previous in ids:
            self.setCurrentIndex(ids.index(previous))
        else:
            self.setCurrentIndex(0 if ids else -1)
        self.blockSignals(False)
        self._on_index_changed(self.currentIndex())

    def _on_index_changed(self, index):
        node_id = self.itemData(index) if index >= 0 else ""
        node_id = node_id or ""
        if node_id != self._current_id:
            self._current_id = node_id
            self.currentNodeIDChanged.emit(node_id)
            self.currentNodeChanged.emit(self.currentNode())

    def nodeCount(self) -> int:
        return len(self._nodes())

    def currentNodeID(self) -> str:
        return self._current_id

    def currentNode(self):
        if not self._current_id or self._scene is None:
            return None
        return self._scene.GetNodeByID(self._current_id)

    def setCurrentNodeID(self, node_id):
        ids = [self.itemData(i) for i in range(self.count())]
        node_id = node_id or ""
        if node_id in ids:
            self.setCurrentIndex(ids.index(node_id))

    def setCurrentNode(self, node):
        self.setCurrentNodeID(node.GetID() if node is not None else "")


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
