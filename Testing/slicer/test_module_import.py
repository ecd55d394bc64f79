"""``MedSeqFT/MedSeqFT.py`` itself, imported as Slicer imports it, on PySide6 and a real MRML scene.

The stand-in application (standin_slicer.py) gives the module ``slicer.app``, ``slicer.util`` (the
real Slicer ``util.py`` of the slicer-core wheel, GUI functions replaced with the same
signatures), ``ScriptedLoadableModule`` and ``parameterNodeWrapper``. The module is created, its
widget set up and entered, and its own self-test ``MedSeqFTTest.runTest()`` runs through
``slicer.selfTests["MedSeqFT"]`` as in ``Slicer --testing``.
"""

import ast
import inspect
import subprocess
import sys

import pytest

slicer = pytest.importorskip("slicer")

from panel_harness import app, click  # noqa: E402
import standin_slicer  # noqa: E402


@pytest.fixture
def standin(monkeypatch, tmp_path):
    app()
    s = standin_slicer.install(monkeypatch, tmp_path)
    yield s
    if s.widget is not None:
        s.widget.cleanup()


def parameters(fn):
    """Names, kinds and defaults of ``fn``'s parameters (a callable default counts as "callable")."""
    return [(p.name, p.kind, "callable" if callable(p.default) else p.default)
            for p in inspect.signature(fn).parameters.values()]


def test_standin_util_keeps_slicer_signatures():
    for name in standin_slicer.REPLACED:
        real = getattr(standin_slicer.REAL_UTIL, name)
        fake = getattr(standin_slicer.make_util([]), name)
        if inspect.isclass(real):
            real, fake = real.__init__, fake.__init__
        assert parameters(fake) == parameters(real), name


def test_module_widget_setup_and_self_test(standin):
    module = standin.load_module()
    widget = standin.widget
    assert widget.panels is not None and widget.controller.scene is slicer.mrmlScene
    assert widget.layout.count() >= 2  # the .ui widget and the stretch
    assert module.registerSampleData in standin.app.slots["startupCompleted()"]
    assert slicer.selfTests["MedSeqFT"].__self__ is standin.module_object
    slicer.selfTests["MedSeqFT"]()  # ScriptedLoadableModule.runTest -> MedSeqFTTest.runTest
    assert [m for m in standin.messages if m[0] == "delay"][-1][1] == "parameter node OK"
    assert standin.errors() == []


@pytest.mark.parametrize("version", [(5, 6), (5, 8)])
def test_older_slicer_is_refused_with_a_message(standin, version):
    standin.app.majorVersion, standin.app.minorVersion = version
    module = standin.load_module()
    widget = standin.widget
    assert widget.panels is None and widget.controller is None
    text = widget.versionLabel.text()
    assert "needs 3D Slicer 5.10 or later" in text and f"this is Slicer {version[0]}.{version[1]}" in text
    with pytest.raises(RuntimeError, match="5.10"):
        module.MedSeqFTLogic(cli_prefix=["python"]).run(["status", "x"])
    assert module.version_problem((5, 10), (3, 9)) and not module.version_problem((5, 10), (3, 12))
    assert not module.version_problem((6, 0), (3, 12))


def test_module_file_parses_and_imports_on_python39():
    """An older Slicer (Python 3.9) must reach the version message: the module file and the two
    MedSeqFTUI files it imports at the top are Python 3.9 syntax, and nothing else is imported
    at the top."""
    top_level = set()
    for path in (standin_slicer.MODULE_FILE, standin_slicer.REPO / "MedSeqFT/MedSeqFTUI/choices.py",
                 standin_slicer.REPO / "MedSeqFT/MedSeqFTUI/qtcompat.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))
        if path == standin_slicer.MODULE_FILE:
            for node in tree.body:
                if isinstance(node, ast.ImportFrom):
                    top_level.add(node.module)
                elif isinstance(node, ast.Import):
                    top_level.update(a.name for a in node.names)
    assert top_level - {"logging", "os", "sys", "pathlib", "typing", "slicer"} == {
        "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "MedSeqFTUI.choices", "MedSeqFTUI.qtcompat"}


def hide_packages(monkeypatch, hidden, installed_after_pip=False):
    """Make ``hidden`` distributions look absent to the dependency check (until pip ran)."""
    from MedSeqFTUI import dependencies

    real = dependencies.installed_version
    state = {"pip": False}

    def version_of(name):
        if name in hidden and not (installed_after_pip and state["pip"]):
            return None
        return real(name)

    monkeypatch.setattr(dependencies, "installed_version", version_of)
    return state


def test_failed_pip_install_is_shown_and_nothing_starts(standin, monkeypatch, tmp_path):
    """Finding: pip raises CalledProcessError, the old code caught only RuntimeError."""
    hide_packages(monkeypatch, {"peft"})
    standin.util.pip_error = subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install", "peft"])
    standin.load_module()
    panels = standin.widget.panels
    panels.workspace.pathEdit.setText(str(tmp_path / "ws"))
    click(panels.workspace.createButton)
    pip = [m for m in standin.messages if m[0] == "pip"]
    assert len(pip) == 1 and "peft>=0.21,<0.23" in pip[0][1] and pip[0][1].startswith("torch==")
    assert any("pip could not install peft" in e and "exit code 1" in e for e in standin.errors()), standin.messages
    status = panels.workspace.statusLabel.text()
    assert status.startswith("not created") and "creating" not in status
    assert not standin.widget.controller.busy and not (tmp_path / "ws").exists()


def test_restart_is_offered_after_installing(standin, monkeypatch):
    state = hide_packages(monkeypatch, {"peft"}, installed_after_pip=True)
    original = standin.util.pip_install
    standin.util.pip_install = lambda requirements, **kw: (original(requirements), state.update(pip=True))
    module = standin.load_module()
    assert module.dependenciesReady()
    asked = [text for kind, text in standin.messages if kind == "ask"]
    assert "peft>=0.21,<0.23" in asked[0] and "Restart Slicer now?" in asked[-1]
    assert standin.app.restarts == 1
    assert module.dependenciesReady() and standin.app.restarts == 1  # checked once per session


def test_parameter_node_is_saved_with_the_scene(standin, tmp_path):
    import numpy as np

    standin.load_module()
    panels, widget = standin.widget.panels, standin.widget
    ct = slicer.util.addVolumeFromArray(np.zeros((8, 8, 8), "float32"), name="CT")
    panels.refine.deviceCombo.setCurrentIndex(panels.refine.deviceCombo.findText("cpu"))
    panels.tasks.datasetEdit.setText("/data/Dataset001_Liver")
    panels.buffer.runsSpin.setValue(128)
    panels.buffer.randomCheck.setChecked(True)
    panels.results.volumeSelector.setCurrentNode(ct)
    panels.tasks.modeCombo.setCurrentIndex(1)
    panels.tasks.methodCombo.setCurrentIndex(panels.tasks.methodCombo.findText("linear_probe"))
    panels.tasks.shotsSpin.setValue(5)
    panels.tasks.transductiveCheck.setChecked(True)
    node = widget.logic.getParameterNode().parameterNode
    assert (node.GetParameter("device"), node.GetParameter("datasetPath"), node.GetParameter("mdsRuns"),
            node.GetParameter("randomBuffer")) == ("cpu", "/data/Dataset001_Liver", "128", "True")
    assert (node.GetParameter("taskMode"), node.GetParameter("adapterMethod"), node.GetParameter("shots"),
            node.GetParameter("transductiveTask")) == ("Adapter (few-shot, frozen base)", "linear_probe", "5", "True")
    assert node.GetNodeReference("inputVolume").GetID() == ct.GetID()

    scene_file = tmp_path / "scene.mrml"
    slicer.mrmlScene.SetURL(str(scene_file))
    assert slicer.mrmlScene.Commit()
    slicer.mrmlScene.Clear(0)  # File -> Close Scene: the panels return to the defaults
    assert panels.refine.deviceCombo.currentText() == "auto" and panels.tasks.datasetEdit.text() == ""
    assert panels.tasks.mode() == "kg_rft" and not panels.tasks.methodCombo.isEnabled()
    slicer.mrmlScene.SetURL(str(scene_file))
    assert slicer.mrmlScene.Connect()  # File -> Load Scene
    assert panels.refine.deviceCombo.currentText() == "cpu"
    assert panels.tasks.datasetEdit.text() == "/data/Dataset001_Liver"
    assert panels.buffer.runsSpin.value() == 128 and panels.buffer.randomCheck.isChecked()
    assert panels.results.input_volume().GetName() == "CT"
    assert panels.tasks.mode_arguments() == ["--mode", "adapter", "--method", "linear_probe", "--shots", "5",
                                             "--shots-seed", "0", "--transductive"]


def test_phantom_case_is_registered_as_sample_data(standin):
    module = standin.load_module()
    for slot in standin.app.slots["startupCompleted()"]:
        slot()
    (source,) = slicer.modules.sampleDataSources["MedSeqFT"]
    assert source["sampleName"] == "MedSeqFTPhantomCT" and source["thumbnailFileName"].endswith("MedSeqFT.png")
    volume, seg = source["customDownloader"](source)  # the Sample Data button (runs `medseqft phantoms`)
    from MedSeqFTUI import scene_glue

    assert volume.GetName() == "MedSeqFTPhantomCT" and scene_glue.segment_names(seg) == ["liver", "liver_tumour"]
    tags = [scene_glue.segment_terminology(seg.GetSegmentation().GetNthSegment(i)) for i in range(2)]
    assert "SCT^10200004^Liver" in tags[0] and "SCT^4147007^Mass" in tags[1] and tags[1].endswith("SCT^10200004^Liver~^^")
    assert module.dependenciesReady()
