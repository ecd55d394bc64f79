"""Small widget helpers shared by the panels (portable between PythonQt and PySide6)."""

from __future__ import annotations

from typing import Callable, List, Sequence

from .qtcompat import get, qt

__all__ = ["section_layout", "finish_section", "fill_table", "make_table", "browse_row", "hbox", "find_child"]


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


def browse_row(placeholder: str, pick: Callable[[str], str]):
    """``(row widget, line edit)``: a path field and a "Browse..." button calling ``pick``."""
    edit = qt.QLineEdit()
    edit.setPlaceholderText(placeholder)
    button = qt.QPushButton("Browse...")

    def on_browse():
        chosen = pick(get(edit, "text"))
        if chosen:
            edit.setText(chosen)

    button.clicked.connect(lambda *_: on_browse())
    return hbox(edit, button), edit


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
