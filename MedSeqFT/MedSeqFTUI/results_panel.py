"""Results panel: each task's check right after training (Dice per class, and in red the classes
never predicted, from ``medseqft status WS --json``), the metrics table and the forgetting
matrix; predict a scene volume with a task's model in the background and overlay the result as
a named, coloured segmentation; load the test-case predictions of a task for review."""

from __future__ import annotations

from pathlib import Path
from typing import List

from .qtcompat import get, qt
from .widgets import fill_table, finish_section, hbox, make_table, section_layout
from . import workspace_files as wf
from .tasks_panel import PREDICTION_ATTRIBUTE

__all__ = ["ResultsPanel", "training_check_rows"]

CHECK_HEADERS = ["task", "failed classes", "Dice % after training", "per class"]
FAILED_COLOR = "#c62828"


def training_check_rows(status: dict) -> List[tuple]:
    """``(task, failed text, Dice %, per-class Dice %)`` per refined task of ``status --json``.

    The failed text names each class never predicted on the task's test cases right after
    training (``"putamen never predicted"``), empty when none.
    """
    rows = []
    for t in status.get("tasks") or []:
        if not isinstance(t, dict) or (t.get("dice") is None and not t.get("failed_classes")):
            continue
        per_class = ", ".join(f"{c} {float(d):.1f}" for c, d in (t.get("class_dice") or {}).items() if d is not None)
        failed = t.get("failed_classes") or []
        rows.append((t.get("name", "?"), f"{', '.join(failed)} never predicted" if failed else "",
                     "-" if t.get("dice") is None else f"{float(t['dice']):.1f}", per_class))
    return rows


def _image_stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


class ResultsPanel:
    def __init__(self, section, controller) -> None:
        self.c = controller
        self.pending = None  # (volume node, task, expected output, input file) of a running predict job
        self.written = []    # files the running predict job reported
        self.overlays = []
        self._checking = False  # a status query is running
        self._check_stale = False
        layout = section_layout(section)
        form = qt.QFormLayout()
        self.checkTable = make_table(CHECK_HEADERS)
        self.checkTable.setMinimumHeight(90)
        self.checkTable.setToolTip("each task's model on its own test cases right after training; a class never "
                                   "predicted there failed to train (more iterations, a larger patch, or more cases)")
        form.addRow("After training:", self.checkTable)
        self.evaluateButton = qt.QPushButton("Evaluate all tasks")
        form.addRow(self.evaluateButton)
        self.metricsTable = make_table(["task", "Dice %", "HD95 mm", "test cases"])
        form.addRow("Metrics:", self.metricsTable)
        self.forgettingTable = make_table(["model"])
        form.addRow("Forgetting (Dice %):", self.forgettingTable)
        self.taskCombo = qt.QComboBox()
        form.addRow("Task model:", self.taskCombo)
        self.volumeCombo = qt.QComboBox()
        self.refreshVolumesButton = qt.QPushButton("Refresh")
        form.addRow("Volume:", hbox(self.volumeCombo, self.refreshVolumesButton))
        self.predictButton = qt.QPushButton("Segment volume")
        self.loadTestButton = qt.QPushButton("Load test-case predictions")
        form.addRow(hbox(self.predictButton, self.loadTestButton))
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        form.addRow(self.progress)
        self.statusLabel = finish_section(layout, form)
        self.evaluateButton.clicked.connect(lambda *_: self.on_evaluate())
        self.refreshVolumesButton.clicked.connect(lambda *_: self.refresh_volumes())
        self.predictButton.clicked.connect(lambda *_: self.on_predict())
        self.loadTestButton.clicked.connect(lambda *_: self.on_load_test_predictions())
        self.c.workspaceChanged.connect(lambda *_: self.refresh())
        self.c.dataChanged.connect(self.refresh)
        self.c.busyChanged.connect(lambda *_: self._update_enabled())
        self.c.jobEvents.connect(self.on_job_events)
        self.c.jobFinished.connect(self.on_job_finished)
        self._update_enabled()

    # -- state ----------------------------------------------------------------------------
    def _volumes(self):
        if self.c.scene is None:
            return []
        nodes = self.c.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        out = []
        for i in range(nodes.GetNumberOfItems()):
            n = nodes.GetItemAsObject(i)
            if not n.IsA("vtkMRMLLabelMapVolumeNode") and not n.GetHideFromEditors():
                out.append(n)
        return out

    def refresh_volumes(self) -> None:
        current = get(self.volumeCombo, "currentText")
        self.volumeCombo.clear()
        names = [n.GetName() for n in self._volumes()]
        for name in names:
            self.volumeCombo.addItem(name)
        if current in names:
            self.volumeCombo.setCurrentIndex(names.index(current))
        self._update_enabled()

    def _finished_tasks(self):
        return [r["name"] for r in wf.task_rows(self.c.workspace)] if self.c.workspace else []

    def _update_enabled(self) -> None:
        idle = self.c.workspace is not None and not self.c.busy
        has_task = get(self.taskCombo, "count") > 0
        self.evaluateButton.setEnabled(idle)
        self.predictButton.setEnabled(idle and has_task and get(self.volumeCombo, "count") > 0 and self.c.scene is not None)
        self.loadTestButton.setEnabled(idle and has_task and self.c.scene is not None)

    def refresh_check(self) -> None:
        """Ask ``status WS --json`` (in the background, one query at a time) for the check table."""
        if self.c.workspace is None:
            fill_table(self.checkTable, [])
            return
        if self._checking:
            self._check_stale = True
            return
        self._checking = True
        self.c.run_query(["status", str(self.c.workspace), "--json"], self._on_status)

    def _on_status(self, code: int, out: str, err: str) -> None:
        self._checking = False
        if self._check_stale:
            self._check_stale = False
            self.refresh_check()
            return
        doc = wf.json_reply(code, out)
        if doc is None:
            self.statusLabel.setText(wf.last_line(err) or f"medseqft status exited with {code}")
            return
        rows = training_check_rows(doc)
        fill_table(self.checkTable, rows)
        red = qt.QBrush(qt.QColor(FAILED_COLOR))
        for r, row in enumerate(rows):
            if row[1]:
                self.checkTable.item(r, 0).setForeground(red)
                self.checkTable.item(r, 1).setForeground(red)

    def refresh(self) -> None:
        ws = self.c.workspace
        self.refresh_check()
        fill_table(self.metricsTable, wf.metrics_rows(ws) if ws else [])
        headers, rows = wf.forgetting_table(ws) if ws else ([], [])
        self.forgettingTable.setColumnCount(max(1, len(headers)))
        if headers:
            self.forgettingTable.setHorizontalHeaderLabels(headers)
        fill_table(self.forgettingTable, rows)
        current = get(self.taskCombo, "currentText")
        names = [r["name"] for r in wf.task_rows(ws) if r["status"] == "done"] if ws else []
        self.taskCombo.clear()
        for n in names:
            self.taskCombo.addItem(n)
        if current in names:
            self.taskCombo.setCurrentIndex(names.index(current))
        self.refresh_volumes()

    # -- actions --------------------------------------------------------------------------
    def on_evaluate(self) -> None:
        if self.c.run_job("evaluate", []):
            self.statusLabel.setText("evaluating every finished model on every earlier task ...")

    def _volume_file(self, volume) -> Path:
        """A file holding the volume: its own file if it has one, else a fresh export."""
        storage = volume.GetStorageNode()
        if storage is not None and storage.GetFileName() and Path(storage.GetFileName()).is_file():
            return Path(storage.GetFileName())
        from . import scene_glue

        out = Path(self.c.workspace) / "predict_inputs" / f"{scene_glue.safe_case_name(volume.GetName())}.nii.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        scene_glue.save_volume(self.c.scene, volume, out)
        return out

    def on_predict(self) -> None:
        task = get(self.taskCombo, "currentText")
        index = get(self.volumeCombo, "currentIndex")
        volumes = self._volumes()
        if not task or not (0 <= index < len(volumes)):
            self.c.prompts.error("choose a task model and a volume")
            return
        volume = volumes[index]
        image = self._volume_file(volume)
        out = Path(self.c.workspace) / "predictions" / task
        if self.c.run_job("predict", ["--task", task, "--out", str(out), str(image)]):
            self.pending = (volume, task, out / f"{_image_stem(image)}.nii.gz" if image.name.endswith(".nii.gz") else None, image)
            self.written = []
            self.statusLabel.setText(f"segmenting {volume.GetName()} with the {task} model ...")
            self.progress.setValue(0)

    def on_job_events(self, events, summary) -> None:
        if self.c.job is not None and self.c.job.command in ("predict", "evaluate"):
            self.progress.setValue(int(round(100 * summary.fraction)))
        if self.c.job is not None and self.c.job.command == "predict" and self.pending is not None:
            # predict reports each written file as the message of its progress event
            for ev in events:
                msg = ev.get("message")
                if ev.get("event") == "progress" and isinstance(msg, str) and _image_stem(Path(msg)) != Path(msg).name:
                    self.written.append(Path(msg))

    def on_job_finished(self, state, summary, command) -> None:
        if command == "evaluate":
            self.statusLabel.setText(f"evaluation {state}" + (f": {summary.message}" if state != "done" else ""))
            return
        if command != "predict" or self.pending is None:
            return
        volume, task, expected, image = self.pending
        self.pending = None
        if state != "done":
            self.statusLabel.setText(f"prediction {state}: {summary.message}")
            return
        out_dir = Path(self.c.workspace) / "predictions" / task
        # the library names outputs after the case: the input's name without suffix and
        # without an nnU-Net channel tag (_0000)
        stem = _image_stem(image)
        case = stem[:-5] if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit() else stem
        candidates = list(self.written)
        candidates += [p for p in (expected,) if p is not None]
        candidates += sorted(p for n in (stem, case) for p in out_dir.glob(f"{n}.*") if not p.name.endswith(".labels.json"))
        pred = next((p for p in candidates if p is not None and p.is_file()), None)
        if pred is None:
            self.statusLabel.setText(f"prediction finished but no output for {image.name} in {out_dir}")
            return
        self.overlay(volume, pred, task)

    def overlay(self, volume, prediction: Path, task: str):
        """Show ``prediction`` as a segmentation named after the task's labels, on ``volume``."""
        from . import scene_glue

        labels = wf.read_json_or(prediction.with_name(_image_stem(prediction) + ".labels.json")) \
            or wf.read_task(self.c.workspace, task).get("labels") or {}
        lm = scene_glue.load_labelmap(self.c.scene, prediction, f"{volume.GetName()}_{task}_tmp")
        seg = scene_glue.import_labels_as_segmentation(self.c.scene, lm, volume, labels, f"{volume.GetName()} {task} prediction")
        seg.SetAttribute(PREDICTION_ATTRIBUTE, task)  # never exported as training labels
        scene_glue.show_in_slice_views(self.c.scene, volume, seg)
        self.overlays.append(seg)
        self.statusLabel.setText(f"{seg.GetName()}: segments {', '.join(scene_glue.segment_names(seg))}")
        return seg

    def on_load_test_predictions(self) -> None:
        from . import scene_glue

        task = get(self.taskCombo, "currentText")
        cases = [c for c in wf.test_case_predictions(self.c.workspace, task) if c["prediction"] and c["image"]]
        if not cases:
            self.c.prompts.error(f"no saved test-case predictions for {task}; run Evaluate first")
            return
        labels = wf.read_task(self.c.workspace, task).get("labels") or {}
        for case in cases:
            volume = scene_glue.load_volume(self.c.scene, case["image"], f"{task} {case['id']}")
            lm = scene_glue.load_labelmap(self.c.scene, case["prediction"], f"{case['id']}_tmp")
            seg = scene_glue.import_labels_as_segmentation(self.c.scene, lm, volume, labels, f"{task} {case['id']} prediction")
            seg.SetAttribute(PREDICTION_ATTRIBUTE, task)
            self.overlays.append(seg)
        scene_glue.show_in_slice_views(self.c.scene, volume, self.overlays[-1])
        self.statusLabel.setText(f"loaded {len(cases)} test case(s) of {task} with their predictions")
        self.refresh_volumes()
