"""Buffer preview panel: run MDS selection in the background and show the task's training
cases with their SSL score; buffer cases are marked. Clicking a row loads that case and its
labels into the slice views."""

from __future__ import annotations

from .qtcompat import get, qt
from .widgets import fill_table, finish_section, hbox, make_table, section_layout, set_status
from . import workspace_files as wf

__all__ = ["BufferPanel"]

HEADERS = ["case", "SSL score (mean loss)", "std", "runs", "buffer"]


class BufferPanel:
    def __init__(self, section, controller) -> None:
        self.c = controller
        self.rows = []
        self.loaded = None  # (volume, segmentation) of the case clicked last; forgotten on scene close
        layout = section_layout(section)
        form = qt.QFormLayout()
        self.taskCombo = qt.QComboBox()
        form.addRow("Task:", self.taskCombo)
        self.kSpin = qt.QSpinBox()
        self.kSpin.setRange(0, 10000)
        self.kSpin.setSpecialValueText("auto (20%)")
        self.kSpin.setToolTip("buffer size K; auto = 20% of the task's training cases")
        self.runsSpin = qt.QSpinBox()
        self.runsSpin.setRange(1, 100000)
        self.runsSpin.setValue(64)
        self.runsSpin.setToolTip("stochastic SSL-loss runs per case (paper: 1000, GPU only)")
        self.randomCheck = qt.QCheckBox("random buffer (ablation)")
        form.addRow("K:", hbox(self.kSpin, qt.QLabel("runs:"), self.runsSpin, self.randomCheck))
        self.runButton = qt.QPushButton("Run MDS selection")
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        form.addRow(hbox(self.runButton, self.progress))
        self.table = make_table(HEADERS)
        form.addRow(self.table)
        self.statusLabel = finish_section(layout, form)
        guard = controller.guard
        guard.on_click(self.runButton, "Could not start the MDS selection.", self.on_run)
        guard.connect(self.taskCombo.currentIndexChanged, "Could not show the buffer.", lambda *_: self.refresh_table())
        guard.connect(self.table.cellClicked, "Could not load the case.", lambda row, *_: self.on_row_clicked(row), wait_cursor=True)
        guard.connect(self.c.workspaceChanged, "Could not show the buffer.", lambda *_: self.refresh())
        guard.connect(self.c.dataChanged, "Could not show the buffer.", lambda *_: self.refresh())
        guard.connect(self.c.busyChanged, "Could not update the Buffer panel.", lambda *_: self._update_enabled())
        guard.connect(self.c.jobEvents, "Could not show the selection progress.", self.on_job_events)
        guard.connect(self.c.sceneClosed, "Could not reset the Buffer panel.", self.on_scene_closed)
        self._update_enabled()

    def on_scene_closed(self) -> None:
        self.loaded = None

    def _update_enabled(self) -> None:
        self.runButton.setEnabled(self.c.workspace is not None and not self.c.busy and get(self.taskCombo, "count") > 0)

    def current_task(self) -> str:
        return get(self.taskCombo, "currentText")

    def select_arguments(self) -> list:
        args = ["--task", self.current_task(), "--runs", str(get(self.runsSpin, "value"))]
        if get(self.kSpin, "value") > 0:
            args += ["--k", str(get(self.kSpin, "value"))]
        if self.randomCheck.isChecked():
            args.append("--random")
        return args

    def on_run(self) -> None:
        if not self.current_task():
            set_status(self.statusLabel, "add a task first", error=True)
            return
        if self.c.run_job("select", self.select_arguments()):
            set_status(self.statusLabel, f"scoring the cases of {self.current_task()} with M0's SSL loss ...")
            self.progress.setValue(0)

    def on_job_events(self, events, summary) -> None:
        if self.c.job is None or self.c.job.command != "select":
            return
        self.progress.setValue(int(round(100 * summary.fraction)))
        if summary.final:
            self.statusLabel.setText(f"selection {summary.final}: {summary.message}")

    def on_row_clicked(self, row: int) -> None:
        if self.c.scene is None or not (0 <= row < len(self.rows)):
            return
        from . import scene_glue

        r = self.rows[row]
        if not r["image"]:
            return
        labels = wf.read_task(self.c.workspace, self.current_task()).get("labels") or {}
        try:
            volume, seg = scene_glue.load_case(self.c.scene, r["image"], r["label"], labels, name=r["id"])
        except ValueError as exc:
            set_status(self.statusLabel, str(exc), error=True)
            return
        self.loaded = (volume, seg)
        set_status(self.statusLabel, f"loaded {r['id']} with its labels")

    def refresh(self) -> None:
        names = wf.task_names(self.c.workspace) if self.c.workspace else []
        current = self.current_task()
        existing = [self.taskCombo.itemText(i) for i in range(get(self.taskCombo, "count"))]
        if existing != names:
            self.taskCombo.clear()
            for n in names:
                self.taskCombo.addItem(n)
            if current in names:
                self.taskCombo.setCurrentIndex(names.index(current))
        self.refresh_table()
        self._update_enabled()

    def refresh_table(self) -> None:
        task = self.current_task()
        self.rows = wf.buffer_rows(self.c.workspace, task) if (self.c.workspace and task) else []
        fill_table(self.table, [(r["id"], "" if r["score"] is None else f"{r['score']:.4f}",
                                 "" if r["std"] is None else f"{r['std']:.4f}", r["runs"] or "",
                                 f"selected ({r['rank']})" if r["rank"] else "") for r in self.rows])
        for i, r in enumerate(self.rows):
            if r["rank"]:
                for col in range(len(HEADERS)):
                    item = self.table.item(i, col)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
        manifest = wf.read_buffer(self.c.workspace, task) if (self.c.workspace and task) else {}
        if manifest:
            self.statusLabel.setText(f"{manifest.get('method', '?')} buffer: {len(manifest.get('selected') or [])} of "
                                     f"{len(self.rows)} cases, {manifest.get('forward_passes', '?')} SSL loss evaluations")
