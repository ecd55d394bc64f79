"""MedSeqFT: sequential fine-tuning of a 3D segmentation foundation model inside 3D Slicer.

Thin module file: the panels live in ``MedSeqFTUI/*_panel.py``, scene glue in
``MedSeqFTUI/scene_glue.py``, the background job wrapper in ``MedSeqFTUI/jobprocess.py``.
The GUI never imports torch: every heavy step runs as ``PythonSlicer -m MedSeqFTLib ...``.
"""

import os
import sys
from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from MedSeqFTUI.controller import Controller, Prompts  # noqa: E402
from MedSeqFTUI.jobprocess import JobProcess, default_cli_prefix  # noqa: E402


class MedSeqFT(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MedSeqFT"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSeqFT contributors"]
        self.parent.helpText = (
            "Adapt a 3D segmentation foundation model to a sequence of tasks without forgetting: "
            "MDS buffer selection, KD-based fine-tuning, LoRA distillation and merge. "
            "Create a workspace, add tasks, preview the buffer, refine, then review results.")
        self.parent.acknowledgementText = "Implements MedSeqFT (Ye et al., 2025) on MONAI and PEFT."


class SlicerPrompts(Prompts):
    """Questions and messages as Slicer dialogs."""

    def ask(self, text):
        return slicer.util.confirmYesNoDisplay(text)

    def info(self, text):
        slicer.util.infoDisplay(text)

    def error(self, text):
        slicer.util.errorDisplay(text)


class MedSeqFTWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        from MedSeqFTUI.panels import Panels

        ui_widget = slicer.util.loadUI(self.resourcePath("UI/MedSeqFT.ui"))
        self.layout.addWidget(ui_widget)
        self.logic = MedSeqFTLogic()
        self.controller = Controller(scene=slicer.mrmlScene, prompts=SlicerPrompts())
        self.controller.preflight = self._dependencies_ready
        self.panels = Panels(ui_widget, self.controller)
        self._deps_ok = False
        self.layout.addStretch(1)

    def _dependencies_ready(self):
        """First-use check before the first library process: install torch & co. if agreed."""
        if self._deps_ok:
            return True
        from MedSeqFTUI.dependencies import ensure_dependencies

        try:
            with slicer.util.WaitCursor():
                self._deps_ok = ensure_dependencies(ask=slicer.util.confirmYesNoDisplay)
        except RuntimeError as exc:
            slicer.util.errorDisplay(str(exc))
            return False
        return self._deps_ok

    def cleanup(self):
        # the job keeps running; reopening the workspace reattaches to it
        self.controller.shutdown()


class MedSeqFTLogic(ScriptedLoadableModuleLogic):
    """Scripting and batch entry points (no GUI); see Resources/batch/.

    ``run(["refine", ws, "--device", "cpu"])`` blocks until the command finishes and returns its
    exit code (0 ok, 2 bad input, 3 cancelled, 1 internal error); ``run_sequence`` runs a whole
    sequence on a list of dataset folders; ``start_job`` starts a detached job to poll.
    """

    def __init__(self, cli_prefix=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.cli_prefix = list(cli_prefix) if cli_prefix else default_cli_prefix()

    def run(self, args):
        from MedSeqFTUI.batch import run_command

        return run_command(args, self.cli_prefix)

    def run_sequence(self, workspace, datasets, foundation="demo", preset="cpu_demo", device="auto", init_args=()):
        from MedSeqFTUI.batch import run_sequence

        return run_sequence(workspace, datasets, foundation, preset, device, init_args, cli_prefix=self.cli_prefix)

    def start_job(self, workspace, command, args=()):
        """Start a detached job and return its ``JobProcess`` (call ``poll()`` to follow it)."""
        job = JobProcess(workspace, self.cli_prefix)
        job.start(command, args)
        return job


class MedSeqFTTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test: a thin mirror of Testing/slicer (scene glue + panel wiring)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        # Slicer 5.6's default runTest runs nothing: call the tests explicitly
        self.setUp()
        self.test_scene_export_roundtrip()
        self.setUp()
        self.test_panels_build()

    def _make_case(self, name):
        import numpy as np

        volume = slicer.util.addVolumeFromArray(np.random.default_rng(0).normal(size=(12, 14, 16)).astype("float32"), name=name)
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} seg")
        seg.CreateDefaultDisplayNodes()
        seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        seg.GetSegmentation().AddEmptySegment("liver", "liver")
        mask = np.zeros((12, 14, 16), dtype=np.uint8)
        mask[2:8, 3:9, 4:12] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask, seg, "liver", volume)
        return volume, seg, mask

    def test_scene_export_roundtrip(self):
        import tempfile

        from MedSeqFTUI import scene_glue

        self.delayDisplay("export scene pairs and load them back")
        out = Path(tempfile.mkdtemp()) / "dataset"
        volume, seg, mask = self._make_case("caseA")
        mapping = scene_glue.export_pairs_to_dataset(slicer.mrmlScene, [(volume, seg)], out)
        self.assertEqual(mapping, {"background": 0, "liver": 1})
        vol2, seg2 = scene_glue.load_case(slicer.mrmlScene, out / "images" / "caseA.nii.gz",
                                          out / "labels" / "caseA.nii.gz", mapping, name="reloaded")
        self.assertEqual(scene_glue.segment_names(seg2), ["liver"])
        got = slicer.util.arrayFromSegmentBinaryLabelmap(seg2, seg2.GetSegmentation().GetNthSegmentID(0), vol2)
        self.assertEqual(int(got.sum()), int(mask.sum()))
        self.delayDisplay("scene glue OK")

    def test_panels_build(self):
        import tempfile

        self.delayDisplay("module widget and panels")
        widget = slicer.modules.medseqft.widgetRepresentation().self()
        panels = widget.panels
        self.assertEqual(panels.refine.startButton.text, "Start")
        self.assertFalse(panels.refine.startButton.enabled)  # no workspace open yet
        recorder = Prompts()
        widget.controller.prompts, saved = recorder, widget.controller.prompts
        try:
            self.assertFalse(widget.controller.open_workspace(tempfile.mkdtemp()))  # no workspace.json
            self.assertIn("no workspace.json", recorder.messages[-1][1])
        finally:
            widget.controller.prompts = saved
        self.delayDisplay("panels OK")
