"""The panels and the MRML scene (a real slicer-core ``vtkMRMLScene``) on PySide6:

- "Segment volume" takes its input from a scene-aware node selector by node ID: same-named,
  reordered and deleted volumes never send the wrong image to predict;
- File -> Close Scene is observed: the panels forget the nodes they held, and a prediction that
  finishes afterwards is not attached to a removed (or ID-reused) volume;
- the prediction goes into the output segmentation chosen in the selector, or a new node, with
  named, terminology-coded segments;
- Apply-style buttons are enabled only when their inputs are valid;
- every job log line also reaches the application log (the ``MedSeqFT`` logger).
"""

import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from panel_harness import app, build_module, click, wait_until  # noqa: E402
from test_panels_fake_cli import FAKE, make_workspace, scene_with_views, write_img  # noqa: E402


def add_volume(scene, name, value, shape=(8, 8, 8)):
    """A volume that exists only in the scene (no file), filled with ``value``."""
    from vtk.util import numpy_support

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    image = slicer.vtkImageData() if hasattr(slicer, "vtkImageData") else __import__("vtk").vtkImageData()
    image.SetDimensions(shape[2], shape[1], shape[0])
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.full(shape, value, np.float32).ravel(), deep=True))
    node.SetAndObserveImageData(image)
    node.SetSpacing(2.0, 2.0, 2.0)
    node.CreateDefaultDisplayNodes()
    return node


@pytest.fixture
def opened(tmp_path, monkeypatch):
    """Panels on an opened workspace (task ``liver`` refined); ``run_job`` records instead of
    starting a library process (``predict`` is driven by hand: on_job_finished)."""
    from MedSeqFTUI.controller import Controller, Prompts

    app()
    ws = make_workspace(tmp_path)
    scene = scene_with_views()
    prompts = Prompts()
    controller = Controller(scene=scene, cli_prefix=FAKE, prompts=prompts, poll_ms=50)
    root, panels = build_module(controller)
    assert controller.open_workspace(ws)
    started = []
    monkeypatch.setattr(controller, "run_job", lambda command, args=(): started.append((command, list(args))) or True)
    yield controller, panels, scene, started, root
    controller.shutdown()


def predict_input(started):
    command, args = started[-1]
    assert command == "predict"
    return sitk.GetArrayFromImage(sitk.ReadImage(args[-1]))


def finish_prediction(controller, panels, tmp_path, value=1):
    """What the predict job would write, then its final event."""
    from MedSeqFTUI.events import JobSummary

    image = Path(panels.results.pending["image"])
    out = controller.workspace / "predictions" / "liver"
    out.mkdir(parents=True, exist_ok=True)
    pred = np.zeros((8, 8, 8), np.uint8)
    pred[2:5, 2:5, 2:5] = value
    write_img(out / image.name, pred)
    panels.results.on_job_finished("done", JobSummary(), "predict")


def test_same_named_volumes_are_told_apart_by_node_id(opened):
    """Finding: the old combo box listed volume names and re-selected by name on refresh, so
    the second of two "CT" volumes became the first one."""
    controller, panels, scene, started, _ = opened
    first, second = add_volume(scene, "CT", 1.0), add_volume(scene, "CT", 7.0)
    results = panels.results
    results.volumeSelector.setCurrentNode(second)
    controller.dataChanged.emit()  # any refresh of the panels
    assert results.input_volume().GetID() == second.GetID()
    click(results.predictButton)
    assert np.all(predict_input(started) == 7.0)  # the second CT was sent, not the first


def test_reordered_and_deleted_volumes(opened, tmp_path):
    controller, panels, scene, started, _ = opened
    a, b, c = (add_volume(scene, n, v) for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0)))
    results = panels.results
    results.volumeSelector.setCurrentNode(b)
    scene.RemoveNode(a)  # the list shifts; the choice stays b
    assert results.input_volume().GetID() == b.GetID()
    click(results.predictButton)
    assert np.all(predict_input(started) == 2.0)
    scene.RemoveNode(b)  # deleted while predicting
    finish_prediction(controller, panels, tmp_path)
    assert "no longer in the scene" in results.statusLabel.text() and results.overlays == []
    scene.RemoveNode(c)
    assert results.input_volume() is None and not results.predictButton.isEnabled()


def test_scene_close_drops_the_panels_nodes(opened, tmp_path):
    """Finding: after File -> Close Scene the panels kept (and later used) removed nodes."""
    from MedSeqFTUI import scene_glue

    controller, panels, scene, started, root = opened
    volume = add_volume(scene, "CT", 5.0)
    panels.results.volumeSelector.setCurrentNode(volume)
    pred = np.zeros((8, 8, 8), np.uint8)
    pred[1:4, 1:4, 1:4] = 1
    overlay = panels.results.overlay(volume, Path(write_img(tmp_path / "p.nii.gz", pred)), "liver")
    assert panels.results.overlays == [overlay]
    panels.buffer.on_row_clicked(0)
    assert panels.buffer.loaded is not None
    click(panels.results.predictButton)
    assert panels.results.pending is not None

    scene.Clear(0)  # File -> Close Scene
    assert controller.scene_generation == 1
    assert panels.results.overlays == [] and panels.buffer.loaded is None
    assert "scene was closed" in panels.results.statusLabel.text()
    reused = add_volume(scene, "CT", 9.0)  # node IDs start again after a close
    finish_prediction(controller, panels, tmp_path)
    assert panels.results.overlays == [] and scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    assert "no longer in the scene" in panels.results.statusLabel.text()
    assert panels.results.input_volume().GetID() == reused.GetID()
    assert scene_glue.segment_names(overlay) == ["liver"]  # the old Python object is harmless


def test_prediction_fills_the_chosen_segmentation_with_coded_segments(opened, tmp_path):
    from MedSeqFTUI import scene_glue

    controller, panels, scene, started, _ = opened
    volume = add_volume(scene, "CT", 5.0)
    target = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my liver")
    target.GetSegmentation().AddEmptySegment("old", "old")
    results = panels.results
    results.volumeSelector.setCurrentNode(volume)
    results.segmentationSelector.setCurrentNode(target)
    click(results.predictButton)
    finish_prediction(controller, panels, tmp_path, value=2)
    assert results.overlays == [target] and scene_glue.segment_names(target) == ["tumour"]
    entry = scene_glue.segment_terminology(target.GetSegmentation().GetNthSegment(0))
    assert "SCT^49755003^Morphologically Altered Structure~SCT^4147007^Mass" in entry
    results.segmentationSelector.setCurrentNode(None)  # "Create new segmentation"
    click(results.predictButton)
    finish_prediction(controller, panels, tmp_path, value=1)
    new = results.overlays[-1]
    assert new is not target and new.GetName() == "CT liver prediction"
    assert "SCT^10200004^Liver" in scene_glue.segment_terminology(new.GetSegmentation().GetNthSegment(0))


def test_buttons_need_valid_inputs_and_say_so_inline(tmp_path):
    from MedSeqFTUI.controller import Controller, Prompts

    app()
    prompts = Prompts()
    controller = Controller(scene=scene_with_views(), cli_prefix=FAKE, prompts=prompts)
    root, panels = build_module(controller)
    ws = panels.workspace
    assert not ws.createButton.isEnabled() and not ws.openButton.isEnabled()  # no folder yet
    ws.pathEdit.setText(str(tmp_path / "new"))
    assert ws.createButton.isEnabled() and ws.openButton.isEnabled()
    ws.foundationCombo.setCurrentIndex(1)  # "model file...": needs the file
    assert not ws.createButton.isEnabled()
    ws.foundationCombo.setCurrentIndex(0)
    click(ws.openButton)  # not a workspace: said inline, no pop-up
    assert "no workspace.json here" in ws.statusLabel.text() and prompts.messages == []
    wsdir = make_workspace(tmp_path / "x")
    ws.pathEdit.setText(str(wsdir))
    click(ws.openButton)
    assert controller.workspace == wsdir
    assert not panels.tasks.addButton.isEnabled()  # no dataset folder yet
    panels.tasks.datasetEdit.setText(str(tmp_path))
    assert panels.tasks.addButton.isEnabled()
    assert not panels.results.predictButton.isEnabled()  # no volume in the scene
    controller.shutdown()


def test_job_lines_reach_the_application_log(tmp_path, monkeypatch, caplog):
    from MedSeqFTUI.controller import Controller, Prompts

    monkeypatch.setenv("FAKE_CLI_STEPS", "6")
    monkeypatch.setenv("FAKE_CLI_STEP_S", "0.02")
    app()
    ws = make_workspace(tmp_path)
    controller = Controller(cli_prefix=FAKE, prompts=Prompts(), poll_ms=30)
    assert controller.open_workspace(ws)
    with caplog.at_level(logging.INFO, logger="MedSeqFT"):
        assert controller.run_job("refine", ["--device", "cpu"])
        wait_until(lambda: controller.summary.final == "done", 30, "refine")
    lines = [r.getMessage() for r in caplog.records if r.name == "MedSeqFT"]
    assert any("refine started at step 0" in line for line in lines), lines
    assert any(line.startswith("MedSeqFT refine:") and "refine finished" in line for line in lines), lines
    controller.shutdown()
