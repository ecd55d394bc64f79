"""A stand-in Slicer application for importing ``MedSeqFT/MedSeqFT.py`` itself on PySide6.

``install(monkeypatch, tmp_path)`` turns the real ``slicer`` package of the ``slicer-core`` wheel
(real MRML scene, nodes, Segmentations logic) into what a scripted module sees inside Slicer:

- ``slicer.app``: version 5.10 (changeable), ``testingEnabled()``, cursors, ``connect`` (records
  ``startupCompleted()`` slots), ``temporaryPath``/``cachePath``, ``restart()`` (recorded),
  a module manager; ``slicer.mrmlScene``: a fresh ``vtkMRMLScene``; ``slicer.modules``
  (volumes/segmentations logics, the loaded module); ``slicer.selfTests``.
- ``slicer.util``: the wheel's own ``slicer/util.py`` (Slicer's source) for everything that
  runs headless (``addVolumeFromArray``, ``arrayFromSegmentBinaryLabelmap``, ``restart`` ...),
  with the functions that need Slicer's GUI replaced by recording stand-ins that keep the
  original signatures (Testing/slicer/test_module_import.py compares them with
  ``inspect.signature``): dialogs, ``loadUI`` (PySide6's ``QUiLoader``), ``tryWithErrorDisplay``,
  ``WaitCursor``, ``pip_install``, ``setSliceViewerLayers``, ``modulePath``, ``settingsValue``.
- ``slicer.ScriptedLoadableModule`` and ``slicer.parameterNodeWrapper``: the stand-ins in
  ``standin_scripted_module.py`` and ``standin_parameter_node.py``; ``SampleData``: a recorder of
  ``SampleDataLogic.registerCustomSampleDataSource`` with Slicer's signature.

``load_module()`` then does what Slicer's module manager does: import the file, create the module
(parent with ``path``), create the widget representation, call ``setup()`` and ``enter()``.
"""

import contextlib
import importlib.util
import logging
import sys
import traceback
import types
from pathlib import Path

import slicer

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "MedSeqFT" / "MedSeqFT.py"
REAL_UTIL = sys.modules["slicer.util"]

#: the slicer.util functions replaced by stand-ins (each keeps the real signature)
REPLACED = ["errorDisplay", "infoDisplay", "warningDisplay", "confirmYesNoDisplay", "confirmOkCancelDisplay",
            "delayDisplay", "loadUI", "tryWithErrorDisplay", "WaitCursor", "pip_install", "setSliceViewerLayers",
            "modulePath", "settingsValue", "mainWindow"]


class FakeApp:
    def __init__(self, tmp_path):
        self.majorVersion, self.minorVersion = 5, 10
        self.temporaryPath = str(tmp_path / "slicer_tmp")
        self.cachePath = str(tmp_path / "slicer_cache")
        self.testing = False
        self.slots = {}
        self.restarts = 0
        self.cursor_depth = 0
        self.applicationName = "Slicer"

    def testingEnabled(self):
        return self.testing

    def connect(self, signal, slot):
        self.slots.setdefault(signal, []).append(slot)

    def setOverrideCursor(self, cursor):
        self.cursor_depth += 1

    def restoreOverrideCursor(self):
        self.cursor_depth -= 1

    def processEvents(self, *args):
        from PySide6.QtWidgets import QApplication

        QApplication.processEvents()

    def restart(self):
        self.restarts += 1

    def moduleManager(self):
        return types.SimpleNamespace(connect=lambda *a: None, disconnect=lambda *a: None)


def make_util(recorder):
    """The ``slicer.util`` stand-in: the real module's functions, GUI ones replaced."""
    util = types.ModuleType("slicer.util")
    util.__dict__.update({k: v for k, v in vars(REAL_UTIL).items() if not k.startswith("__")})

    def errorDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        logging.error(text)
        recorder.append(("error", text))

    def infoDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        recorder.append(("info", text))

    def warningDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        recorder.append(("warning", text))

    def confirmYesNoDisplay(text, windowTitle=None, parent=None, **kwargs):
        recorder.append(("ask", text))
        return util.answer

    def confirmOkCancelDisplay(text, windowTitle=None, parent=None, **kwargs):
        recorder.append(("ask", text))
        return util.answer

    def delayDisplay(message, autoCloseMsec=1000, parent=None, **kwargs):
        logging.info(message)
        recorder.append(("delay", message))

    def loadUI(path):
        from MedSeqFTUI.pyside_shim import loadUI as load

        if not Path(path).is_file():
            raise RuntimeError("Could not load UI file: file not found " + str(path) + "\n\n")
        return load(path)

    @contextlib.contextmanager
    def tryWithErrorDisplay(message=None, show=True, waitCursor=False):
        # Slicer's logic: cursor, then on an exception an error display with the traceback, re-raise
        try:
            if waitCursor:
                slicer.app.setOverrideCursor(None)
            yield
            if waitCursor:
                slicer.app.restoreOverrideCursor()
        except Exception as e:
            if waitCursor:
                slicer.app.restoreOverrideCursor()
            if show and not slicer.app.testingEnabled():
                errorMessage = f"{message}\n\n{e}" if message is not None else str(e)
                util.errorDisplay(errorMessage, detailedText=traceback.format_exc())
            raise

    class WaitCursor:
        def __init__(self, show=True):
            self.show = show

        def __enter__(self):
            if self.show:
                slicer.app.setOverrideCursor(None)

        def __exit__(self, type, value, traceback):
            if self.show:
                slicer.app.restoreOverrideCursor()

    def pip_install(requirements, **kwargs):
        recorder.append(("pip", requirements))
        if util.pip_error is not None:
            raise util.pip_error

    def setSliceViewerLayers(background="keep-current", foreground="keep-current", label="keep-current",
                             foregroundOpacity=None, labelOpacity=None, fit=False, rotateToVolumePlane=False):
        recorder.append(("layers", background))

    def modulePath(moduleName):
        return str(MODULE_FILE)

    def settingsValue(key, default, converter=lambda v: v, settings=None):
        return default

    def mainWindow():
        return None

    for name in REPLACED:
        setattr(util, name, locals()[name])
    util.answer = True
    util.pip_error = None
    return util


class ModuleParent:
    """The ``parent`` Slicer passes to a scripted module (``qSlicerScriptedLoadableModule``)."""

    def __init__(self, path):
        self.path = str(path)


class StandIn:
    """What ``install`` returns: ``app``, ``util``, ``messages`` (dialogs, pip calls ...) and the
    loaded ``module``, ``widget``."""

    def __init__(self, app, util, messages):
        self.app, self.util, self.messages = app, util, messages
        self.module = self.widget = None

    def errors(self):
        return [text for kind, text in self.messages if kind == "error"]

    def load_module(self):
        spec = importlib.util.spec_from_file_location("MedSeqFT", MODULE_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["MedSeqFT"] = module
        spec.loader.exec_module(module)
        self.module = module
        self.module_object = module.MedSeqFT(ModuleParent(MODULE_FILE))
        from standin_scripted_module import ModuleWidgetParent

        parent = ModuleWidgetParent()
        self.widget = module.MedSeqFTWidget(parent)
        self.widget.setup()
        parent.isEntered = True
        self.widget.enter()
        representation = types.SimpleNamespace(self=lambda: self.widget)
        slicer.modules.medseqft = types.SimpleNamespace(widgetRepresentation=lambda: representation,
                                                        path=str(MODULE_FILE))
        slicer.modules.MedSeqFTWidget = self.widget
        return module


def install(monkeypatch, tmp_path):
    """Make ``import slicer`` look like Slicer 5.10 to a scripted module (see the module docstring)."""
    import standin_parameter_node
    import standin_scripted_module

    messages = []
    app = FakeApp(tmp_path)
    util = make_util(messages)
    scene = slicer.vtkMRMLScene()
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLScene(scene)
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    modules = types.SimpleNamespace(volumes=types.SimpleNamespace(logic=lambda: volumes),
                                    segmentations=types.SimpleNamespace(logic=lambda: segmentations))
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    monkeypatch.setattr(slicer, "selfTests", {}, raising=False)
    monkeypatch.setattr(slicer, "util", util)
    monkeypatch.setitem(sys.modules, "slicer.util", util)
    for name, module in (("ScriptedLoadableModule", standin_scripted_module), ("parameterNodeWrapper", standin_parameter_node)):
        monkeypatch.setattr(slicer, name, module, raising=False)
        monkeypatch.setitem(sys.modules, f"slicer.{name}", module)
    sample_data = types.ModuleType("SampleData")

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None, nodeNames=None,
                                           customDownloader=None, thumbnailFileName=None, loadFileTypes=None,
                                           loadFiles=None, loadFileProperties={}, checksums=None, loadFileType=None):
            sources = slicer.modules.__dict__.setdefault("sampleDataSources", {})
            sources.setdefault(category, []).append(dict(sampleName=sampleName, uris=uris, fileNames=fileNames,
                                                         nodeNames=nodeNames, customDownloader=customDownloader,
                                                         thumbnailFileName=thumbnailFileName))

    sample_data.SampleDataLogic = SampleDataLogic
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    monkeypatch.delitem(sys.modules, "MedSeqFT", raising=False)
    return StandIn(app, util, messages)
