"""Tasks panel: add a task from a dataset folder or from the scene's (volume, segmentation)
pairs, in one of two modes (MedSeqFT K&G RFT, or an adapter task: frozen shared model, own small
modules, optionally few-shot and transductive), and list the tasks with their cases, labels,
status and mode."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

from .choices import ADAPTER_METHODS, BLACK_BOX_METHODS, MODALITIES, MODE_VALUES, SEED_MAX, SHOTS_MAX, TASK_MODES
from .qtcompat import get, qt
from .widgets import browse_row, fill_table, finish_section, hbox, make_table, section_layout, set_status
from . import workspace_files as wf

__all__ = ["TasksPanel", "scene_pairs", "MODALITIES"]

HEADERS = ["task", "cases", "train / test", "labels", "status", "mode"]


PREDICTION_ATTRIBUTE = "MedSeqFT.prediction"


def scene_pairs(scene) -> List[Tuple[object, object]]:
    """(volume, segmentation) pairs: one per volume, with a segmentation whose reference
    geometry is that volume. Model predictions (segmentations carrying the
    ``MedSeqFT.prediction`` attribute) are never training labels and are skipped; a volume with
    several segmentations uses the first one added."""
    import slicer

    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    pairs, seen = [], set()
    segs = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    for i in range(segs.GetNumberOfItems()):
        seg = segs.GetItemAsObject(i)
        if seg.GetAttribute(PREDICTION_ATTRIBUTE):
            continue
        volume = seg.GetNodeReference(role)
        if volume is None or not volume.IsA("vtkMRMLScalarVolumeNode") or volume.IsA("vtkMRMLLabelMapVolumeNode"):
            continue
        if seg.GetSegmentation().GetNumberOfSegments() > 0 and volume.GetID() not in seen:
            seen.add(volume.GetID())
            pairs.append((volume, seg))
    return pairs


class TasksPanel:
    def __init__(self, section, controller) -> None:
        self.c = controller
        guard = controller.guard
        layout = section_layout(section)
        form = qt.QFormLayout()
        row, self.datasetEdit = browse_row("nnU-Net v2 / Decathlon folder, or images/ + labels/",
                                           lambda start: qt.QFileDialog.getExistingDirectory(None, "Dataset folder", start), guard)
        form.addRow("Dataset:", row)
        self.nameEdit = qt.QLineEdit()
        self.nameEdit.setPlaceholderText("task name (default: the dataset's name)")
        form.addRow("Task name:", self.nameEdit)
        self.modalityCombo = qt.QComboBox()
        for m in MODALITIES:
            self.modalityCombo.addItem(m)
        self.modalityCombo.setToolTip("the images' modality (it chooses the intensity normalisation); auto = from "
                                      "dataset.json, or guessed from the intensities of an images/ + labels/ folder; "
                                      "for nnU-Net/Decathlon it must agree with dataset.json")
        form.addRow("Modality:", self.modalityCombo)
        self._build_mode_widgets(form)
        self.addButton = qt.QPushButton("Add dataset as next task")
        self.addSceneButton = qt.QPushButton("Add task from scene")
        self.addSceneButton.setToolTip("export every segmentation with its reference volume as a dataset, then add it")
        form.addRow(hbox(self.addButton, self.addSceneButton))
        self.table = make_table(HEADERS)
        form.addRow(self.table)
        self.statusLabel = finish_section(layout, form)
        guard.on_click(self.addButton, "Could not add the dataset as a task.", self.on_add)
        guard.on_click(self.addSceneButton, "Could not add a task from the scene.", self.on_add_from_scene)
        guard.connect(self.datasetEdit.textChanged, "Could not update the Tasks panel.", lambda *_: self._update_enabled())
        for signal in (self.modeCombo.currentIndexChanged, self.methodCombo.currentIndexChanged, self.shotsSpin.valueChanged):
            guard.connect(signal, "Could not update the Tasks panel.", lambda *_: self._update_mode_widgets())
        guard.connect(self.c.workspaceChanged, "Could not list the tasks.", lambda *_: self.refresh())
        guard.connect(self.c.dataChanged, "Could not list the tasks.", lambda *_: self.refresh())
        guard.connect(self.c.busyChanged, "Could not update the Tasks panel.", lambda *_: self._update_enabled())
        self._update_enabled()
        self._update_mode_widgets()

    def _build_mode_widgets(self, form) -> None:
        """Mode, and for an adapter task its method, shots (K, 0 = all) with their seed, transductive."""
        self.modeCombo = qt.QComboBox()
        for m in TASK_MODES:
            self.modeCombo.addItem(m)
        self.modeCombo.setToolTip("MedSeqFT K&G RFT: the task refines the shared model (KD-based fine-tuning, LoRA "
                                  "distillation, merge), which the next task starts from. Adapter: the current shared "
                                  "model stays frozen and the task trains only its own small modules (FSEFT); earlier "
                                  "and later tasks are untouched (add-task --mode)")
        form.addRow("Mode:", self.modeCombo)
        self.methodCombo = qt.QComboBox()
        for m in ADAPTER_METHODS:
            self.methodCombo.addItem(m)
        self.methodCombo.setToolTip("what the adapter task trains on the frozen base: spatial_adapter (default) / "
                                    "spatial_adapter_1x1 / linear_probe on its last feature map (black box), lora, "
                                    "bitfit (biases; not on the small U-Net, which has none), decoder, or full "
                                    "(everything, a reference) (add-task --method)")
        form.addRow("Method:", self.methodCombo)
        self.shotsSpin = qt.QSpinBox()
        self.shotsSpin.setRange(0, SHOTS_MAX)
        self.shotsSpin.setSpecialValueText("all")
        self.shotsSpin.setToolTip("few-shot: train on K labelled training volumes drawn reproducibly with the seed "
                                  "(recorded in task.json); all = every training case (add-task --shots)")
        self.shotsSeedSpin = qt.QSpinBox()
        self.shotsSeedSpin.setRange(0, SEED_MAX)
        self.shotsSeedSpin.setToolTip("seed of the draw of the K support volumes (add-task --shots-seed)")
        self.seedLabel = qt.QLabel("seed:")
        form.addRow("Shots (K):", hbox(self.shotsSpin, self.seedLabel, self.shotsSeedSpin))
        self.transductiveCheck = qt.QCheckBox("Transductive (also adapt on the test images)")
        self.transductiveCheck.setToolTip("black-box methods only (" + ", ".join(BLACK_BOX_METHODS) + "): also adapt on "
                                          "the task's unlabelled test images with the support's size prior "
                                          "(add-task --transductive)")
        form.addRow("", self.transductiveCheck)

    def mode(self) -> str:
        """``"kg_rft"`` or ``"adapter"`` (the CLI value of the mode box)."""
        index = get(self.modeCombo, "currentIndex")
        return MODE_VALUES[index] if 0 <= index < len(MODE_VALUES) else MODE_VALUES[0]

    def transductive_applies(self) -> bool:
        """Only an adapter task with a black-box method can be transductive."""
        return self.mode() == "adapter" and get(self.methodCombo, "currentText") in BLACK_BOX_METHODS

    def _update_mode_widgets(self) -> None:
        """The adapter settings are editable only in adapter mode; the seed only with K > 0,
        transductive only with a black-box method (a tick that does not apply is kept but not passed)."""
        adapter = self.mode() == "adapter"
        for w in (self.methodCombo, self.shotsSpin):
            w.setEnabled(adapter)
        few_shot = adapter and get(self.shotsSpin, "value") > 0
        self.shotsSeedSpin.setEnabled(few_shot)
        self.seedLabel.setEnabled(few_shot)
        self.transductiveCheck.setEnabled(self.transductive_applies())

    def mode_arguments(self) -> list:
        """``[]`` for a K&G RFT task (the default mode), else ``--mode adapter --method M
        [--shots K --shots-seed S] [--transductive]``."""
        if self.mode() != "adapter":
            return []
        args = ["--mode", "adapter", "--method", get(self.methodCombo, "currentText")]
        shots = get(self.shotsSpin, "value")
        if shots > 0:
            args += ["--shots", str(shots), "--shots-seed", str(get(self.shotsSeedSpin, "value"))]
        if self.transductive_applies() and self.transductiveCheck.isChecked():
            args.append("--transductive")
        return args

    def _update_enabled(self) -> None:
        """"Add dataset" needs a workspace and a dataset folder; "from scene" a workspace and a scene."""
        ready = self.c.workspace is not None and not self.c.busy
        self.addButton.setEnabled(ready and bool(get(self.datasetEdit, "text").strip()))
        self.addSceneButton.setEnabled(ready and self.c.scene is not None)

    def add_arguments(self, dataset: str, name: str) -> list:
        """``add-task WS DATASET [--name N] [--modality M] [mode_arguments()]`` (no ``--modality``
        for "auto")."""
        modality = get(self.modalityCombo, "currentText")
        return (["add-task", str(self.c.workspace), dataset] + (["--name", name] if name else [])
                + (["--modality", modality] if modality and modality != "auto" else []) + self.mode_arguments())

    def _add(self, dataset: str, name: str) -> None:
        args = self.add_arguments(dataset, name)

        def done(code, out, err):
            lines = [ln for ln in (out if code == 0 else err).splitlines() if ln.strip()]
            msg = lines[-1] if lines else f"add-task exited with {code}"
            if code == 0 and lines:  # the summary line, and an adapter task's support cases
                msg = "\n".join([lines[0]] + [ln for ln in lines[1:] if ln.startswith("adapter task:")])
            set_status(self.statusLabel, msg, error=code != 0)
            self.refresh()

        if self.c.run_command(args, done):
            set_status(self.statusLabel, f"checking every file of {dataset} ...")
        else:
            set_status(self.statusLabel, "not added: MedSeqFT's Python packages are not ready (see the message)", error=True)

    def on_add(self) -> None:
        dataset = get(self.datasetEdit, "text").strip()
        if not dataset:
            set_status(self.statusLabel, "choose a dataset folder first", error=True)
            return
        self._add(dataset, get(self.nameEdit, "text").strip())

    def on_add_from_scene(self) -> None:
        from . import scene_glue

        pairs = scene_pairs(self.c.scene)
        if not pairs:
            set_status(self.statusLabel, "the scene has no segmentation with a reference volume; segment some volumes first",
                       error=True)
            return
        name = get(self.nameEdit, "text").strip() or f"scene_task_{len(wf.task_names(self.c.workspace)) + 1}"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        out = Path(self.c.workspace) / "scene_exports" / name
        try:
            mapping = scene_glue.export_pairs_to_dataset(self.c.scene, pairs, out)
        except ValueError as exc:
            set_status(self.statusLabel, str(exc), error=True)
            return
        labels = ", ".join(k for k in mapping if mapping[k])
        self.statusLabel.setText(f"exported {len(pairs)} case(s) with labels {labels} to {out}")
        self._add(str(out), name)

    def refresh(self) -> None:
        rows = wf.task_rows(self.c.workspace) if self.c.workspace else []
        fill_table(self.table, [(r["name"], r["cases"], f"{r['train']} / {r['test']}", r["labels"], r["status"], r["mode"])
                                for r in rows])
        self._update_enabled()
