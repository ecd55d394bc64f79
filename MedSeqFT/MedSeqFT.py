"""MedSeqFT: sequential fine-tuning of a 3D segmentation foundation model inside 3D Slicer.

Thin module file: the panels live in ``MedSeqFTUI/*_panel.py``, scene glue in
``MedSeqFTUI/scene_glue.py``, the background job wrapper in ``MedSeqFTUI/jobprocess.py``.
The GUI never imports torch: every heavy step runs as ``PythonSlicer -m MedSeqFTLib ...``.

Needs Slicer >= 5.10 (Python 3.12): the library runs on MONAI 1.6, which needs Python >= 3.10,
and Slicer 5.6/5.8 ship Python 3.9. This file itself stays importable on Python 3.9 (only
``MedSeqFTUI.choices`` and ``MedSeqFTUI.qtcompat`` are imported at the top) so that an older
Slicer shows a clear message instead of a traceback.
"""

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from MedSeqFTUI.choices import (  # noqa: E402
    ADAPTER_METHODS,
    BACKBONES,
    DEVICES,
    FOUNDATION_SOURCES,
    MODALITIES,
    PRESETS,
    SEED_MAX,
    SHOTS_MAX,
    TASK_MODES,
)
from MedSeqFTUI.qtcompat import get, qt  # noqa: E402

MINIMUM_SLICER = (5, 10)
MINIMUM_PYTHON = (3, 10)


def version_problem(slicer_version, python_version) -> str:
    """The message shown instead of the module on a too-old Slicer; ``""`` when it is fine."""
    slicer_version, python_version = tuple(slicer_version)[:2], tuple(python_version)[:2]
    if slicer_version >= MINIMUM_SLICER and python_version >= MINIMUM_PYTHON:
        return ""
    return ("MedSeqFT needs 3D Slicer {}.{} or later (Python 3.12); this is Slicer {}.{} with Python {}.{}. "
            "Its library runs on MONAI 1.6, which needs Python 3.10 or later. Install Slicer 5.10 or later "
            "from download.slicer.org.").format(*MINIMUM_SLICER, *slicer_version, *python_version)


def running_version_problem() -> str:
    """``version_problem`` of this Slicer and this Python."""
    return version_problem((int(slicer.app.majorVersion), int(slicer.app.minorVersion)), sys.version_info)


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
            "Create a workspace, add tasks, preview the buffer, refine, then review results. "
            "Needs Slicer 5.10 or later.")
        self.parent.acknowledgementText = "Implements MedSeqFT (Ye et al., 2025) on MONAI and PEFT."
        slicer.app.connect("startupCompleted()", registerSampleData)


_DEPENDENCIES_OK = False


def dependenciesReady() -> bool:
    """First-use check before the first library process: install torch & co. if the user agrees.

    Any failure (a refusal, a too-old torch, pip's ``CalledProcessError``) is shown in an error
    dialog and returns ``False``, so no library process starts.
    """
    global _DEPENDENCIES_OK
    if _DEPENDENCIES_OK:
        return True
    from MedSeqFTUI.dependencies import ensure_dependencies

    try:
        _DEPENDENCIES_OK = ensure_dependencies(ask=slicer.util.confirmYesNoDisplay, restart=slicer.util.restart)
    except Exception as exc:  # RuntimeError with advice, or anything unexpected from the installers
        logging.exception("MedSeqFT: the Python packages are not ready")
        slicer.util.errorDisplay(f"MedSeqFT cannot run yet: {exc}", windowTitle="MedSeqFT: Python packages")
        return False
    return _DEPENDENCIES_OK


def registerSampleData():
    """Add the phantom CT case to the Sample Data module (category "MedSeqFT")."""
    with slicer.util.tryWithErrorDisplay("MedSeqFT could not register its sample data."):
        if running_version_problem():
            return
        import SampleData
        from MedSeqFTUI.jobprocess import default_cli_prefix, library_env
        from MedSeqFTUI.sample_data import PhantomSample, register_phantom_sample

        sample = PhantomSample(scene=lambda: slicer.mrmlScene, cli_prefix=default_cli_prefix, env=library_env,
                               cache_dir=lambda: Path(slicer.app.cachePath) / "MedSeqFT", preflight=dependenciesReady)
        icon = os.path.join(_HERE, "Resources", "Icons", "MedSeqFT.png")
        register_phantom_sample(SampleData.SampleDataLogic, _loadPhantomWithErrorDisplay(sample), icon)


def _loadPhantomWithErrorDisplay(sample):
    """The Sample Data button's handler: ``sample(source)`` inside an error display."""
    def loadPhantom(source=None):
        with slicer.util.tryWithErrorDisplay("MedSeqFT could not load its phantom case.", waitCursor=True):
            return sample(source)

    return loadPhantom


@parameterNodeWrapper
class MedSeqFTParameterNode:
    """The panels' settings, saved with the scene and restored when it is loaded.

    Settings of a workspace (iterations, LoRA rank, K) live in the workspace itself.
    """

    workspacePath: str
    foundationSource: Annotated[str, Choice(FOUNDATION_SOURCES)] = FOUNDATION_SOURCES[0]
    foundationFile: str
    backbone: Annotated[str, Choice(BACKBONES)] = BACKBONES[0]
    preset: Annotated[str, Choice(PRESETS)] = PRESETS[0]
    datasetPath: str
    taskName: str
    modality: Annotated[str, Choice(MODALITIES)] = MODALITIES[0]
    taskMode: Annotated[str, Choice(TASK_MODES)] = TASK_MODES[0]
    adapterMethod: Annotated[str, Choice(ADAPTER_METHODS)] = ADAPTER_METHODS[0]
    shots: Annotated[int, WithinRange(0, SHOTS_MAX)] = 0
    shotsSeed: Annotated[int, WithinRange(0, SEED_MAX)] = 0
    transductiveTask: bool = False
    transductivePredict: bool = False
    bufferK: Annotated[int, WithinRange(0, 10000)] = 0
    mdsRuns: Annotated[int, WithinRange(1, 100000)] = 64
    randomBuffer: bool = False
    device: Annotated[str, Choice(DEVICES)] = DEVICES[0]
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    outputSegmentation: slicer.vtkMRMLSegmentationNode


class SlicerPrompts:
    """Questions and messages as Slicer dialogs (the ``Prompts`` interface of the controller)."""

    def ask(self, text):
        return slicer.util.confirmYesNoDisplay(text)

    def info(self, text):
        slicer.util.infoDisplay(text)

    def error(self, text):
        slicer.util.errorDisplay(text)


class MedSeqFTWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.controller = None
        self.panels = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        problem = running_version_problem()
        if problem:  # an older Slicer: say why, build nothing
            logging.error(problem)
            self.versionLabel = qt.QLabel(problem)
            self.versionLabel.setWordWrap(True)
            self.layout.addWidget(self.versionLabel)
            self.layout.addStretch(1)
            return
        from MedSeqFTUI.controller import Controller
        from MedSeqFTUI.panels import Panels

        ui_widget = slicer.util.loadUI(self.resourcePath("UI/MedSeqFT.ui"))
        self.layout.addWidget(ui_widget)
        self.logic = MedSeqFTLogic()
        self.controller = Controller(scene=slicer.mrmlScene, prompts=SlicerPrompts())
        self.controller.guard.display = lambda message, wait: slicer.util.tryWithErrorDisplay(message, waitCursor=wait)
        self.controller.preflight = dependenciesReady
        self.panels = Panels(ui_widget, self.controller)
        guard = self.controller.guard
        guard.observe(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, "MedSeqFT: scene close failed.",
                      self.onSceneStartClose)
        guard.observe(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, "MedSeqFT: scene close failed.",
                      self.onSceneEndClose)
        self.initializeParameterNode()
        self.layout.addStretch(1)

    def cleanup(self):
        # the job keeps running; reopening the workspace reattaches to it
        if self.controller is not None:
            self.controller.shutdown()
        self.setParameterNode(None)

    def enter(self):
        if self.controller is not None:
            self.initializeParameterNode()

    def exit(self):
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller=None, event=None):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller=None, event=None):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode):
        """Connect the panels' settings to ``inputParameterNode`` (a ``MedSeqFTParameterNode``)."""
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
        self._parameterNode = inputParameterNode
        if self._parameterNode is not None and self.panels is not None:
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(self.panels.parameter_widgets())


class MedSeqFTLogic(ScriptedLoadableModuleLogic):
    """Scripting and batch entry points (no GUI); see the module's ``Resources/batch/``.

    ``run(["refine", ws, "--device", "cpu"])`` blocks until the command finishes and returns its
    exit code (0 ok, 2 bad input, 3 cancelled, 1 internal error); ``run_sequence`` runs a whole
    sequence on a list of dataset folders; ``start_job`` starts a detached job to poll.
    Every entry point raises ``RuntimeError`` on a Slicer older than 5.10.
    """

    def __init__(self, cli_prefix=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self._cli_prefix = list(cli_prefix) if cli_prefix else None

    @property
    def cli_prefix(self):
        if self._cli_prefix is None:
            from MedSeqFTUI.jobprocess import default_cli_prefix

            self._cli_prefix = default_cli_prefix()
        return self._cli_prefix

    def getParameterNode(self):
        return MedSeqFTParameterNode(super().getParameterNode())

    def _check_version(self):
        problem = running_version_problem()
        if problem:
            raise RuntimeError(problem)

    def run(self, args):
        self._check_version()
        from MedSeqFTUI.batch import run_command

        return run_command(args, self.cli_prefix)

    def run_sequence(self, workspace, datasets, foundation="demo", preset="cpu_demo", device="auto", init_args=()):
        self._check_version()
        from MedSeqFTUI.batch import run_sequence

        return run_sequence(workspace, datasets, foundation, preset, device, init_args, cli_prefix=self.cli_prefix)

    def start_job(self, workspace, command, args=()):
        """Start a detached job and return its ``JobProcess`` (call ``poll()`` to follow it)."""
        self._check_version()
        from MedSeqFTUI.jobprocess import JobProcess

        job = JobProcess(workspace, self.cli_prefix)
        job.start(command, args)
        return job


class MedSeqFTTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test: a thin mirror of Testing/slicer (scene glue, panel wiring, parameter
    node). Written in the Qt API that PythonQt and PySide6 share, so Testing/slicer runs it too."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        # Slicer 5.6's default runTest runs nothing: call the tests explicitly
        self.setUp()
        self.test_scene_export_roundtrip()
        self.setUp()
        self.test_panels_build()
        self.setUp()
        self.test_task_modes()
        self.setUp()
        self.test_parameter_node_follows_the_panels()

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
        segment = seg2.GetSegmentation().GetNthSegment(0)
        self.assertIn("SCT^10200004^Liver", scene_glue.segment_terminology(segment))  # coded, not just named
        got = slicer.util.arrayFromSegmentBinaryLabelmap(seg2, seg2.GetSegmentation().GetNthSegmentID(0), vol2)
        self.assertEqual(int(got.sum()), int(mask.sum()))
        self.delayDisplay("scene glue OK")

    def test_panels_build(self):
        self.delayDisplay("module widget and panels")
        widget = slicer.modules.medseqft.widgetRepresentation().self()
        panels = widget.panels
        self.assertEqual(get(panels.refine.startButton, "text"), "Start")
        self.assertFalse(panels.refine.startButton.isEnabled())  # no workspace open yet
        self.assertFalse(panels.workspace.createButton.isEnabled())  # no folder chosen yet
        panels.workspace.pathEdit.setText(os.path.join(slicer.app.temporaryPath, "MedSeqFTSelfTestWorkspace"))
        self.assertTrue(panels.workspace.createButton.isEnabled())
        panels.workspace.pathEdit.setText("")
        self.assertFalse(panels.results.predictButton.isEnabled())  # no task model, no volume
        self.delayDisplay("panels OK")

    def test_task_modes(self):
        self.delayDisplay("task modes (K&G RFT, adapter)")
        tasks = slicer.modules.medseqft.widgetRepresentation().self().panels.tasks
        tasks.modeCombo.setCurrentIndex(TASK_MODES.index("MedSeqFT K&G RFT"))
        self.assertEqual(tasks.mode_arguments(), [])
        self.assertFalse(tasks.methodCombo.isEnabled() or tasks.transductiveCheck.isEnabled())
        tasks.modeCombo.setCurrentIndex(TASK_MODES.index("Adapter (few-shot, frozen base)"))
        tasks.methodCombo.setCurrentIndex(ADAPTER_METHODS.index("linear_probe"))
        tasks.shotsSpin.setValue(2)
        tasks.transductiveCheck.setChecked(True)
        self.assertTrue(tasks.methodCombo.isEnabled() and tasks.transductiveCheck.isEnabled())
        self.assertEqual(tasks.mode_arguments(), ["--mode", "adapter", "--method", "linear_probe", "--shots", "2",
                                                  "--shots-seed", "0", "--transductive"])
        tasks.methodCombo.setCurrentIndex(ADAPTER_METHODS.index("lora"))  # not a black-box method
        self.assertFalse(tasks.transductiveCheck.isEnabled())
        self.assertNotIn("--transductive", tasks.mode_arguments())
        tasks.transductiveCheck.setChecked(False)
        tasks.shotsSpin.setValue(0)
        tasks.methodCombo.setCurrentIndex(0)
        tasks.modeCombo.setCurrentIndex(0)
        self.delayDisplay("task modes OK")

    def test_parameter_node_follows_the_panels(self):
        import numpy as np

        self.delayDisplay("parameter node")
        widget = slicer.modules.medseqft.widgetRepresentation().self()
        widget.initializeParameterNode()
        volume = slicer.util.addVolumeFromArray(np.zeros((8, 8, 8), dtype="float32"), name="selftest volume")
        panels = widget.panels
        panels.refine.deviceCombo.setCurrentIndex(DEVICES.index("cpu"))
        panels.results.volumeSelector.setCurrentNode(volume)
        node = widget.logic.getParameterNode()
        self.assertEqual(node.device, "cpu")
        self.assertEqual(node.inputVolume.GetID(), volume.GetID())
        panels.refine.deviceCombo.setCurrentIndex(0)
        self.delayDisplay("parameter node OK")
