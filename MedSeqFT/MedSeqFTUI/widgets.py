"""Small widget helpers shared by the panels (portable between PythonQt and PySide6)."""

from __future__ import annotations

from typing import Callable, List, Sequence

from .qtcompat import IN_SLICER, get, qt

__all__ = ["section_layout", "finish_section", "fill_table", "make_table", "browse_row", "hbox", "find_child",
           "node_selector", "set_status"]

ERROR_COLOR = "#c62828"


def section_layout(section):
    """The layout of a collapsible section from the .ui file (one is created if missing)."""
    layout = section.layout()
    if layout is None:
        layout = qt.QVBoxLayout(section)
    return layout


def finish_section(layout, form):
    """Add a word-wrapped status line under ``form``, put the form into ``layout``; returns the label."""
    status = qt.QLabel("")
    status.setWordWrap(True)
    form.addRow(status)
    box = qt.QWidget()
    box.setLayout(form)
    layout.addWidget(box)
    return status


def make_table(headers: Sequence[str]):
    """A read-only, row-selecting table with the given column headers."""
    table = qt.QTableWidget()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
    table.setSelectionMode(qt.QAbstractItemView.SingleSelection)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    table.setMinimumHeight(140)
    return table


def fill_table(table, rows: List[Sequence[object]]) -> None:
    """Replace the table's content with ``rows`` (each a sequence of cell values)."""
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, qt.QTableWidgetItem("" if value is None else str(value)))
    table.resizeColumnsToContents()


def hbox(*widgets):
    """A widget laying out ``widgets`` in a row."""
    box = qt.QWidget()
    layout = qt.QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return box


def browse_row(placeholder: str, pick: Callable[[str], str], guard):
    """``(row widget, line edit)``: a path field and a "Browse..." button calling ``pick``
    (connected through ``guard``, a ``Guard``)."""
    edit = qt.QLineEdit()
    edit.setPlaceholderText(placeholder)
    button = qt.QPushButton("Browse...")

    def on_browse():
        chosen = pick(get(edit, "text"))
        if chosen:
            edit.setText(chosen)

    guard.on_click(button, "Could not open the file dialog.", on_browse)
    return hbox(edit, button), edit


def set_status(label, text: str, error: bool = False) -> None:
    """Show ``text`` in an inline status label (red for an error) instead of a pop-up."""
    label.setStyleSheet(f"color: {ERROR_COLOR}" if error else "")
    label.setText(text)


def node_selector(node_types: Sequence[str], scene, none_display: str = "", tooltip: str = ""):
    """A scene-aware node selector: Slicer's ``qMRMLNodeComboBox`` (its PySide6 stand-in outside
    Slicer) listing the nodes of exactly ``node_types`` in ``scene``; ``none_display`` (if given)
    is the text of the "no node" entry."""
    if IN_SLICER:
        import slicer

        combo = slicer.qMRMLNodeComboBox()
    else:
        combo = qt.qMRMLNodeComboBox()
    combo.nodeTypes = list(node_types)
    combo.showChildNodeTypes = False  # e.g. no label maps in a scalar-volume selector
    combo.showHidden = False
    combo.noneEnabled = bool(none_display)
    if none_display:
        combo.noneDisplay = none_display
    combo.addEnabled = False
    combo.removeEnabled = False
    combo.renameEnabled = False
    combo.selectNodeUponCreation = False
    if tooltip:
        combo.setToolTip(tooltip)
    combo.setMRMLScene(scene)
    return combo


def find_child(root, name: str):
    """The descendant of ``root`` whose objectName is ``name`` (portable recursive search)."""
    stack = list(root.children())
    while stack:
        w = stack.pop(0)
        try:
            if get(w, "objectName") == name:
                return w
            stack.extend(w.children())
        except AttributeError:  # non-QObject children
            continue
    return None
