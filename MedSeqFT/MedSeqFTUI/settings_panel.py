"""The "Advanced settings" section of the Refinement panel.

A table of every planned or overridden setting (key, value, source, reason) of one task, or of
all tasks together, read from ``medseqft plan WS --json`` in the background whenever the
workspace or its data change. Double-click a value to edit it; **Apply** records the edited
values with ``medseqft plan WS [--task T] --set KEY=VALUE ...``; **Reset** removes the override
of the selected row (``--unset KEY``). The library validates every value: a refusal is shown
inline (the CLI's one-line error), never in a pop-up.
"""

from __future__ import annotations

import json
from typing import List, Optional

from .qtcompat import ctk, get, qt
from . import workspace_files as wf
from .workspace_files import json_reply, last_line

__all__ = ["AdvancedSettings", "ALL_TASKS", "settings_rows", "format_value"]

ALL_TASKS = "all tasks"
HEADERS = ["key", "value", "source", "reason"]
OVERRIDES = ("workspace override", "task override")
ERROR_STYLE = "color: #c62828"


def format_value(value) -> str:
    """A setting as ``plan --set`` reads it back: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def settings_rows(doc: dict, task: str) -> List[dict]:
    """Table rows for ``task`` (a task name, or ``ALL_TASKS``) from ``plan --json`` output.

    Each row: ``key``, ``value`` (text), ``source``, ``reason``, ``editable``. ``ALL_TASKS``
    merges the tasks that can still change (not refined): one row per key; a value or source
    that differs between tasks is listed per task.
    """
    if task != ALL_TASKS:
        entry = doc.get(task) or {}
        editable = entry.get("status") != "done"
        return [{"key": r.get("key"), "value": format_value(r.get("value")), "source": r.get("source", ""),
                 "reason": r.get("reason", ""), "editable": editable} for r in entry.get("settings") or []]
    names = [n for n, e in doc.items() if (e or {}).get("status") != "done"]
    per_key = {}
    for name in names:
        for r in doc[name].get("settings") or []:
            per_key.setdefault(r.get("key"), {})[name] = r
    rows = []
    for key, by_task in per_key.items():
        values = {n: format_value(r.get("value")) for n, r in by_task.items()}
        sources = {r.get("source", "") for r in by_task.values()}
        reasons = {r.get("reason", "") for r in by_task.values()}
        single = len(set(values.values())) == 1 and len(by_task) == len(names)
        rows.append({"key": key, "value": next(iter(values.values())) if single else
                     "; ".join(f"{n}: {v}" for n, v in values.items()),
                     "source": " / ".join(sorted(sources)), "editable": True,
                     "reason": reasons.pop() if len(reasons) == 1 else "differs per task"})
    return rows


def _item(text: str, editable: bool = False):
    item = qt.QTableWidgetItem(text)
    flags = qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled
    item.setFlags(flags | qt.Qt.ItemIsEditable if editable else flags)
    return item


class AdvancedSettings:
    """Builds the collapsible section (``self.section``, collapsed at first) and drives it."""

    def __init__(self, controller) -> None:
        self.c = controller
        self.doc: dict = {}        # the last plan --json answer
        self.rows: List[dict] = []  # the rows shown, with the value text as received
        self._querying = False
        self._stale = False
        self._note = False
        self.section = ctk.ctkCollapsibleButton()
        self.section.setText("Advanced settings")
        form = qt.QFormLayout(self.section)
        self.taskCombo = qt.QComboBox()
        self.taskCombo.setToolTip("one task's settings, or all tasks that are not refined yet (Apply then "
                                  "records workspace-wide overrides)")
        form.addRow("Task:", self.taskCombo)
        self.table = qt.QTableWidget()
        self.table.setColumnCount(len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setEditTriggers(qt.QAbstractItemView.DoubleClicked | qt.QAbstractItemView.EditKeyPressed)
        self.table.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(qt.QAbstractItemView.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(200)
        self.table.setToolTip("double-click a value to edit it, then Apply")
        form.addRow(self.table)
        self.applyButton = qt.QPushButton("Apply")
        self.applyButton.setToolTip("record the edited values (medseqft plan --set)")
        self.resetButton = qt.QPushButton("Reset")
        self.resetButton.setToolTip("remove the override of the selected row (medseqft plan --unset)")
        buttons = qt.QWidget()
        row = qt.QHBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.applyButton)
        row.addWidget(self.resetButton)
        form.addRow(buttons)
        self.messageLabel = qt.QLabel("")
        self.messageLabel.setWordWrap(True)
        form.addRow(self.messageLabel)
        self.section.setProperty("collapsed", True)
        guard = controller.guard
        guard.connect(self.taskCombo.currentIndexChanged, "Could not show the settings.", lambda *_: self.render())
        guard.connect(self.table.itemSelectionChanged, "Could not update the settings table.", lambda *_: self._update_enabled())
        guard.on_click(self.applyButton, "Could not record the settings.", self.on_apply)
        guard.on_click(self.resetButton, "Could not reset the setting.", self.on_reset)
        guard.connect(self.c.workspaceChanged, "Could not read the settings.", lambda *_: self.refresh())
        guard.connect(self.c.dataChanged, "Could not read the settings.", lambda *_: self.refresh())
        guard.connect(self.c.busyChanged, "Could not update the settings table.", lambda *_: self._update_enabled())
        self._update_enabled()

    # -- state ----------------------------------------------------------------------------
    def current_task(self) -> str:
        return get(self.taskCombo, "currentText") or ALL_TASKS

    def selected_row(self) -> Optional[dict]:
        r = get(self.table, "currentRow")
        return self.rows[r] if 0 <= r < len(self.rows) else None

    def _update_enabled(self) -> None:
        idle = self.c.workspace is not None and not self.c.busy
        self.applyButton.setEnabled(idle and any(r["editable"] for r in self.rows))
        row = self.selected_row()
        self.resetButton.setEnabled(idle and row is not None and row["editable"] and self._reset_scope(row) is not None)

    def _reset_scope(self, row: dict) -> Optional[list]:
        """``--task T`` / ``[]`` (workspace) for an overridden row, ``None`` when not overridden."""
        task = self.current_task()
        if task != ALL_TASKS and row["source"] == "task override":
            return ["--task", task]
        if "workspace override" in row["source"]:
            return []
        return None

    def _say(self, text: str, error: bool = False, note: bool = False) -> None:
        """Show ``text`` under the table (red for an error); a ``note`` describes the view and
        is cleared by the next view, a message stays until the next action."""
        self.messageLabel.setStyleSheet(ERROR_STYLE if error else "")
        self.messageLabel.setText(text)
        self._note = note

    # -- reading --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Ask ``plan WS --json`` again (in the background; at most one query at a time)."""
        ws = self.c.workspace
        if ws is None or not wf.task_names(ws):
            self.doc = {}
            self._fill_combo()
            self.render()
            if ws is not None:
                self._say("no tasks yet: add a task to see its plan", note=True)
            return
        if self._querying:
            self._stale = True
            return
        self._querying = True
        self.c.run_query(["plan", str(ws), "--json"], self._on_plan)

    def _on_plan(self, code: int, out: str, err: str) -> None:
        self._querying = False
        if self._stale:
            self._stale = False
            self.refresh()
            return
        doc = json_reply(code, out)
        if doc is None:
            self._say(last_line(err) or f"medseqft plan exited with {code}", error=True)
            return
        self.doc = doc
        self._fill_combo()
        self.render()

    def _fill_combo(self) -> None:
        current = self.current_task()
        names = [ALL_TASKS] + list(self.doc)
        self.taskCombo.blockSignals(True)
        self.taskCombo.clear()
        for name in names:
            self.taskCombo.addItem(name)
        self.taskCombo.setCurrentIndex(names.index(current) if current in names else 0)
        self.taskCombo.blockSignals(False)

    def render(self) -> None:
        """Fill the table from the last answer for the chosen task."""
        task = self.current_task()
        self.rows = settings_rows(self.doc, task) if self.doc else []
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            self.table.setItem(r, 0, _item(row["key"]))
            self.table.setItem(r, 1, _item(row["value"], editable=row["editable"]))
            self.table.setItem(r, 2, _item(row["source"]))
            self.table.setItem(r, 3, _item(row["reason"]))
        self.table.resizeColumnsToContents()
        if self.doc and not any(r["editable"] for r in self.rows):
            self._say(f"{task} is refined: its settings are fixed" if task != ALL_TASKS
                      else "every task is refined: their settings are fixed", note=True)
        elif self._note:
            self._say("")
        self._update_enabled()

    # -- changes --------------------------------------------------------------------------
    def edited(self) -> List[tuple]:
        """``(key, new text)`` for each value cell that differs from what was received."""
        out = []
        for r, row in enumerate(self.rows):
            item = self.table.item(r, 1)
            text = get(item, "text").strip() if item is not None else row["value"]
            if row["editable"] and text != row["value"]:
                out.append((row["key"], text))
        return out

    def _plan(self, args: List[str], what: str) -> None:
        def done(code, out, err):  # the controller's dataChanged that follows refreshes the table
            if code == 0:
                self._say(what)
            else:
                self._say(last_line(err) or f"medseqft plan exited with {code}", error=True)

        if not self.c.run_command(["plan", str(self.c.workspace)] + args, done):
            self._say("not recorded: MedSeqFT's Python packages are not ready (see the message)", error=True)

    def on_apply(self) -> None:
        changes = self.edited()
        if not changes:
            self._say("nothing changed: double-click a value to edit it")
            return
        task = self.current_task()
        scope = [] if task == ALL_TASKS else ["--task", task]
        sets = [a for key, text in changes for a in ("--set", f"{key}={text}")]
        where = "every task not refined yet" if task == ALL_TASKS else task
        self._plan(scope + sets, f"recorded for {where}: " + ", ".join(f"{k}={v}" for k, v in changes))

    def on_reset(self) -> None:
        row = self.selected_row()
        scope = self._reset_scope(row) if row is not None else None
        if scope is None:
            self._say("select an overridden row to reset it")
            return
        where = "the workspace (every task)" if not scope else scope[1]
        self._plan(scope + ["--unset", row["key"]], f"{row['key']}: override removed for {where}")
