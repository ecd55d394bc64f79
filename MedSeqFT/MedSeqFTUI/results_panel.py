"""Results panel: each task's check right after training (Dice per class, and in red the classes
never predicted, from ``medseqft status WS --json``), the metrics table and the forgetting
matrix; predict a scene volume (chosen in a node selector) with a task's model in the background
and show the result as a named, coloured, terminology-coded segmentation (a new node or the
chosen one), an adapter task with a black-box method optionally adapting on that volume first
(``predict --transductive``); load the test-case predictions of a task for review."""

from __future__ import annotations

from pathlib import Path
from typing import List

from .qtcompat import get, qt
from .widgets import fill_table, finish_section, hbox, make_table, node_selector, section_layout, set_status
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
    """Builds the Results section. The volume to segment and the output segmentation are chosen
    with scene-aware node selectors (``qMRMLNodeComboBox``) and remembered by node ID, so a
    renamed, reordered, deleted or same-named volume never sends the wrong image to predict;
    closing the scene drops every node the panel held."""

    def __init__(self, section, controller) -> None:
        self.c = controller
        #: the running predict job: volume_id, segmentation_id (or ""), task, expected output,
        #: input file and the scene generation it was started in
        self.pending = None
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
        self.volumeSelector = node_selector(["vtkMRMLScalarVolumeNode"], controller.scene,
                                            tooltip="the scene volume to segment with the chosen task's model")
        form.addRow("Input volume:", self.volumeSelector)
        self.segmentationSelector = node_selector(
            ["vtkMRMLSegmentationNode"], controller.scene, none_display="Create new segmentation",
            tooltip="where the prediction goes: a new segmentation node, or this one (its segments are replaced)")
        form.addRow("Output segmentation:", self.segmentationSelector)
        self.transductiveCheck = qt.QCheckBox("Transductive (adapt the task's modules on this volume first)")
        self.transductiveCheck.setToolTip("adapter tasks with a black-box method (linear_probe, spatial_adapter, "
                                          "spatial_adapter_1x1) only: a few adaptation steps on the input volume with "
                                          "the task's size prior before predicting; the workspace is not changed "
                                          "(predict --transductive)")
        form.addRow("", self.transductiveCheck)
        self.predictButton = qt.QPushButton("Segment volume")
        self.loadTestButton = qt.QPushButton("Load test-case predictions")
        form.addRow(hbox(self.predictButton, self.loadTestButton))
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        form.addRow(self.progress)
        self.statusLabel = finish_section(layout, form)
        guard = controller.guard
        guard.on_click(self.evaluateButton, "Could not start the evaluation.", self.on_evaluate)
        guard.on_click(self.predictButton, "Could not segment the volume.", self.on_predict)
        guard.on_click(self.loadTestButton, "Could not load the test-case predictions.", self.on_load_test_predictions)
        for signal in (self.volumeSelector.currentNodeChanged, self.taskCombo.currentIndexChanged):
            guard.connect(signal, "Could not update the Results panel.", lambda *_: self._update_enabled())
        guard.connect(self.c.workspaceChanged, "Could not show the results.", lambda *_: self.refresh())
        guard.connect(self.c.dataChanged, "Could not show the results.", lambda *_: self.refresh())
        guard.connect(self.c.busyChanged, "Could not update the Results panel.", lambda *_: self._update_enabled())
        guard.connect(self.c.jobEvents, "Could not show the prediction progress.", self.on_job_events)
        guard.connect(self.c.jobFinished, "Could not show the prediction.", self.on_job_finished)
        guard.connect(self.c.sceneClosed, "Could not reset the Results panel.", self.on_scene_closed)
        self._update_enabled()

    # -- state ----------------------------------------------------------------------------
    def input_volume(self):
        """The volume node chosen in the selector (``None`` when none)."""
        return self.volumeSelector.currentNode()

    def refresh_volumes(self) -> None:
        """Kept for scripts: the node selectors follow the scene by themselves."""
        self._update_enabled()

    def on_scene_closed(self) -> None:
        """File -> Close Scene removed every node: forget the ones this panel held."""
        self.overlays = []
        if self.pending is not None:
            set_status(self.statusLabel, "the scene was closed: the running prediction will be saved in the workspace "
                                         "but not shown")
        self._update_enabled()

    def _update_enabled(self) -> None:
        """Segment volume: a workspace, no job, a finished task and a volume chosen."""
        idle = self.c.workspace is not None and not self.c.busy
        has_task = bool(get(self.taskCombo, "currentText"))
        self.evaluateButton.setEnabled(idle)
        ready = idle and has_task and self.c.scene is not None and self.input_volume() is not None
        self.predictButton.setEnabled(ready)
        self.transductiveCheck.setEnabled(idle and self.transductive_applies())
        self.predictButton.setToolTip("" if ready else "needs a finished task model and an input volume")
        self.loadTestButton.setEnabled(idle and has_task and self.c.scene is not None)

    def transductive_applies(self) -> bool:
        """The chosen task is an adapter task with a black-box method (``predict --transductive``)."""
        task = get(self.taskCombo, "currentText")
        return bool(task) and self.c.workspace is not None and wf.is_black_box_adapter(self.c.workspace, task)

    def predict_arguments(self, task: str, out: Path, image: Path) -> list:
        """``--task T --out DIR [--transductive] IMAGE`` (``--transductive`` only when ticked and it applies)."""
        extra = ["--transductive"] if self.transductive_applies() and self.transductiveCheck.isChecked() else []
        return ["--task", task, "--out", str(out)] + extra + [str(image)]

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
            set_status(self.statusLabel, wf.last_line(err) or f"medseqft status exited with {code}", error=True)
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
        names = wf.finished_tasks(ws) if ws else []  # either mode: status done and every model file there
        self.taskCombo.clear()
        for n in names:
            self.taskCombo.addItem(n)
        if current in names:
            self.taskCombo.setCurrentIndex(names.index(current))
        self._update_enabled()

    # -- actions --------------------------------------------------------------------------
    def on_evaluate(self) -> None:
        if self.c.run_job("evaluate", []):
            set_status(self.statusLabel, "evaluating every finished model on every earlier task ...")

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
        volume = self.input_volume()
        if not task or volume is None:
            set_status(self.statusLabel, "choose a task model and an input volume", error=True)
            return
        image = self._volume_file(volume)
        out = Path(self.c.workspace) / "predictions" / task
        args = self.predict_arguments(task, out, image)
        if self.c.run_job("predict", args):
            expected = out / f"{_image_stem(image)}.nii.gz" if image.name.endswith(".nii.gz") else None
            self.pending = {"volume_id": volume.GetID(), "segmentation_id": get(self.segmentationSelector, "currentNodeID"),
                            "task": task, "expected": expected, "image": image, "generation": self.c.scene_generation}
            self.written = []
            set_status(self.statusLabel, f"segmenting {volume.GetName()} with the {task} model"
                                         + (" (transductive: adapting on it first)" if "--transductive" in args else "") + " ...")
            self.progress.setValue(0)

    def on_job_events(self, events, summary) -> None:
        if self.c.job is not None and self.c.job.command in ("predict", "evaluate"):
            self.progress.setValue(int(round(100 * summary.fraction)))
        if self.c.job is not None and self.c.job.command == "predict" and self.pending is not None:
            if summary.stage == "transductive" and summary.total:
                set_status(self.statusLabel, f"transductive adaptation of {self.pending['task']}: step {summary.step} "
                                             f"of {summary.total}")
            # predict reports each written file as the message of its progress event
            for ev in events:
                msg = ev.get("message")
                if ev.get("event") == "progress" and isinstance(msg, str) and _image_stem(Path(msg)) != Path(msg).name:
                    self.written.append(Path(msg))

    def on_job_finished(self, state, summary, command) -> None:
        if command == "evaluate":
            set_status(self.statusLabel, f"evaluation {state}" + (f": {summary.message}" if state != "done" else ""),
                       error=state == "failed")
            return
        if command != "predict" or self.pending is None:
            return
        pending, self.pending = self.pending, None
        task, expected, image = pending["task"], pending["expected"], pending["image"]
        if state != "done":
            set_status(self.statusLabel, f"prediction {state}: {summary.message}", error=state == "failed")
            return
        volume = self.c.scene.GetNodeByID(pending["volume_id"]) if pending["generation"] == self.c.scene_generation else None
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
            set_status(self.statusLabel, f"prediction finished but no output for {image.name} in {out_dir}", error=True)
            return
        if volume is None:  # removed from the scene, or the scene was closed, while predicting
            set_status(self.statusLabel, f"prediction saved as {pred}; its input volume is no longer in the scene")
            return
        target = self.c.scene.GetNodeByID(pending["segmentation_id"]) if pending["segmentation_id"] else None
        self.overlay(volume, pred, task, segmentation=target)

    def overlay(self, volume, prediction: Path, task: str, segmentation=None):
        """Show ``prediction`` as a segmentation on ``volume``: segments named after the task's
        labels and coded with standard terminology; into ``segmentation`` (its segments are
        replaced) or a new node."""
        from . import scene_glue

        labels = wf.read_json_or(prediction.with_name(_image_stem(prediction) + ".labels.json")) \
            or wf.read_task(self.c.workspace, task).get("labels") or {}
        lm = scene_glue.load_labelmap(self.c.scene, prediction, f"{volume.GetName()}_{task}_tmp")
        seg = scene_glue.import_labels_as_segmentation(self.c.scene, lm, volume, labels, f"{volume.GetName()} {task} prediction",
                                                       segmentation=segmentation)
        seg.SetAttribute(PREDICTION_ATTRIBUTE, task)  # never exported as training labels
        scene_glue.show_in_slice_views(self.c.scene, volume, seg)
        self.overlays.append(seg)
        set_status(self.statusLabel, f"{seg.GetName()}: segments {', '.join(scene_glue.segment_names(seg))}")
        return seg

    def on_load_test_predictions(self) -> None:
        from . import scene_glue

        task = get(self.taskCombo, "currentText")
        cases = [c for c in wf.test_case_predictions(self.c.workspace, task) if c["prediction"] and c["image"]]
        if not cases:
            set_status(self.statusLabel, f"no saved test-case predictions for {task}; run Evaluate first", error=True)
            return
        labels = wf.read_task(self.c.workspace, task).get("labels") or {}
        for case in cases:
            volume = scene_glue.load_volume(self.c.scene, case["image"], f"{task} {case['id']}")
            lm = scene_glue.load_labelmap(self.c.scene, case["prediction"], f"{case['id']}_tmp")
            seg = scene_glue.import_labels_as_segmentation(self.c.scene, lm, volume, labels, f"{task} {case['id']} prediction")
            seg.SetAttribute(PREDICTION_ATTRIBUTE, task)
            self.overlays.append(seg)
        scene_glue.show_in_slice_views(self.c.scene, volume, self.overlays[-1])
        set_status(self.statusLabel, f"loaded {len(cases)} test case(s) of {task} with their predictions")
