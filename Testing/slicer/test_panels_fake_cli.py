"""Panels on real Qt (PySide6 offscreen) with a real background process (fake_cli.py) and a
real MRML scene (slicer-core): workspace files as the library writes them (docs/CONTRACTS.md),
refine -> cancel -> resume driven by clicks, buffer row -> case in the scene, overlay.

The end-to-end test with the real library is test_panels_real_job.py.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from panel_harness import StallWatchdog, app, build_module, click, click_row, screenshot, wait_until  # noqa: E402

FAKE = [sys.executable, str(Path(__file__).with_name("fake_cli.py"))]


def write_img(path, arr):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(img, str(path))
    return str(path)


def make_workspace(root: Path) -> Path:
    """A workspace after select + refine of one task, in the files' contract shapes."""
    ws = root / "ws"
    data = root / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir(parents=True)
    cases = []
    rng = np.random.default_rng(0)
    for i in range(5):
        img = rng.normal(size=(16, 16, 16)).astype(np.float32)
        lab = np.zeros((16, 16, 16), np.uint8)
        lab[4:10, 4:10, 3 + i:9 + i] = 1
        lab[11:14, 2:5, 2:5] = 2
        cases.append({"id": f"c{i}", "images": [write_img(data / "images" / f"c{i}.nii.gz", img)],
                      "label": write_img(data / "labels" / f"c{i}.nii.gz", lab)})
    (ws / "tasks" / "liver" / "model").mkdir(parents=True)
    (ws / "workspace.json").write_text(json.dumps({
        "schema_version": 1, "foundation": {"source": "demo"}, "tasks": ["liver"],
        "config": {"arch": {"name": "small_unet"}}}))
    (ws / "tasks" / "liver" / "task.json").write_text(json.dumps({
        "name": "liver", "labels": {"background": 0, "liver": 1, "tumour": 2}, "cases": cases,
        "split": {"train": ["c0", "c1", "c2", "c3"], "test": ["c4"]}, "status": "done"}))
    (ws / "tasks" / "liver" / "buffer.json").write_text(json.dumps({
        "task": "liver", "method": "mds", "k": 1, "seed": 0, "forward_passes": 256, "selected": ["c2"],
        "cases": [{"id": "c0", "mean_loss": 0.41, "std": 0.02, "runs": 64}, {"id": "c1", "mean_loss": 0.38, "std": 0.03, "runs": 64},
                  {"id": "c2", "mean_loss": 0.21, "std": 0.01, "runs": 64}, {"id": "c3", "mean_loss": 0.29, "std": 0.02, "runs": 64}]}))
    for f in ("encoder.safetensors", "decoder.safetensors"):  # a finished kg_rft model (contents never read here)
        (ws / "tasks" / "liver" / "model" / f).write_bytes(b"")
    (ws / "tasks" / "liver" / "model" / "record.json").write_text("{}")
    (ws / "metrics").mkdir()
    (ws / "metrics" / "metrics.json").write_text(json.dumps({"tasks": {"liver": {"dice": 0.81, "hd95": 3.2, "n_cases": 1}}}))
    (ws / "metrics" / "forgetting.json").write_text(json.dumps({
        "tasks": ["liver"], "dice": [[0.81]], "hd95": [[3.2]], "average_dice": [0.81], "bwt_dice": None}))
    return ws


def scene_with_views():
    scene = slicer.vtkMRMLScene()
    for _ in range(3):
        scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    return scene


def test_panels_refine_cancel_resume_with_fake_cli(tmp_path, monkeypatch, artifacts_dir):
    from MedSeqFTUI.controller import Controller, Prompts
    from MedSeqFTUI import scene_glue

    monkeypatch.setenv("FAKE_CLI_STEPS", "60")
    monkeypatch.setenv("FAKE_CLI_STEP_S", "0.03")
    app()
    ws = make_workspace(tmp_path)
    scene = scene_with_views()
    prompts = Prompts()
    controller = Controller(scene=scene, cli_prefix=FAKE, prompts=prompts, poll_ms=100)
    root, panels = build_module(controller)

    # workspace: open it by clicks
    panels.workspace.pathEdit.setText(str(ws))
    click(panels.workspace.openButton)
    assert controller.workspace == ws
    assert panels.workspace.sequenceLabel.text().startswith("M0 -> M1 (liver)")
    # tasks table
    assert panels.tasks.table.rowCount() == 1
    assert [panels.tasks.table.item(0, c).text() for c in (0, 1, 2, 4)] == ["liver", "5", "4 / 1", "done"]
    # buffer preview: sorted by score, the buffer case marked; a click loads the case
    table = panels.buffer.table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["c2", "c3", "c1", "c0"]
    assert table.item(0, 4).text() == "selected (1)" and table.item(1, 4).text() == ""
    click_row(table, 0)
    volume, seg = panels.buffer.loaded
    assert volume.GetName() == "c2" and scene_glue.segment_names(seg) == ["liver", "tumour"]

    # refinement: Start -> progress -> Cancel -> cancelled -> Resume -> done
    refine = panels.refine
    assert refine.startButton.text() == "Start" and not refine.resumeButton.isEnabled()
    watchdog = StallWatchdog()
    watchdog.start()
    click(refine.startButton)
    wait_until(lambda: controller.summary.step >= 5, 30, "refine progress")
    assert refine.startButton.text() == "Cancel"
    assert not panels.buffer.runButton.isEnabled() and not panels.tasks.addButton.isEnabled()
    assert refine.stageLabel.text() == "full fine-tuning (task 1)" and refine.taskLabel.text() == "liver"
    assert refine.progress.value() > 0 and refine.etaLabel.text() != "-"
    click(refine.startButton)  # Cancel
    wait_until(lambda: not controller.busy, 30, "cancel")
    stopped = controller.summary.step
    assert controller.summary.final == "cancelled" and 5 <= stopped < 60
    assert refine.startButton.text() == "Start" and refine.resumeButton.isEnabled()
    click(refine.resumeButton)
    wait_until(lambda: controller.summary.final == "done", 30, "resume to finish")
    watchdog.stop()
    assert refine.progress.value() == 1000
    log = refine.log.toPlainText()
    assert "refine started at step 0" in log and f"refine started at step {stopped}" in log and "refine finished" in log
    assert refine.startButton.text() == "Start" and not refine.resumeButton.isEnabled()
    print(f"\nlongest main-thread stall while the fake job ran: {watchdog.worst_ms:.1f} ms over {watchdog.ticks} ticks")
    assert watchdog.ticks > 50

    # results: metrics, forgetting, overlay of a prediction on a scene volume
    results = panels.results
    assert results.metricsTable.item(0, 1).text() == "81.0"
    assert results.forgettingTable.item(0, 0).text() == "M[liver]"
    pred = np.zeros((16, 16, 16), np.uint8)
    pred[2:6, 2:6, 2:6] = 2
    pred_path = Path(write_img(tmp_path / "c2_pred.nii.gz", pred))
    overlay = results.overlay(volume, pred_path, "liver")
    assert scene_glue.segment_names(overlay) == ["tumour"]
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    assert overlay.GetNodeReference(role).GetID() == volume.GetID()
    # tasks from the scene: the loaded case (volume + segmentation) is exported and added
    panels.tasks.nameEdit.setText("from scene")
    click(panels.tasks.addSceneButton)
    wait_until(lambda: not controller.busy, 30, "add-task from scene")
    assert not [m for m in prompts.messages if m[0] == "error"], prompts.messages
    export = ws / "scene_exports" / "from_scene"
    assert json.loads((export / "labels.json").read_text()) == {"background": 0, "liver": 1, "tumour": 2}
    assert sorted(p.name for p in (export / "images").iterdir()) == ["c2.nii.gz"]
    assert (ws / "calls.txt").read_text().splitlines() == [f"add-task {export} --name from_scene"]
    assert not [m for m in prompts.messages if m[0] == "error"]
    for attr, section in panels.sections.items():
        screenshot(section, artifacts_dir / "fake_cli" / f"{attr}.png")
    controller.shutdown()


def test_preflight_refusal_starts_nothing(tmp_path):
    from MedSeqFTUI.controller import Controller, Prompts

    app()
    ws = make_workspace(tmp_path)
    controller = Controller(cli_prefix=FAKE, prompts=Prompts())
    assert controller.open_workspace(ws)
    asked = []
    controller.preflight = lambda: asked.append(1) or False
    assert controller.run_job("refine") is False
    controller.run_command(["init", str(tmp_path / "x")], lambda *a: pytest.fail("ran"))
    assert len(asked) == 2 and controller.job is None and not controller.busy
    assert not (ws / "jobs").exists()


def test_reopened_panel_reattaches_to_running_job(tmp_path, monkeypatch):
    from MedSeqFTUI.controller import Controller, Prompts

    monkeypatch.setenv("FAKE_CLI_STEPS", "40")
    monkeypatch.setenv("FAKE_CLI_STEP_S", "0.05")
    app()
    ws = make_workspace(tmp_path)
    first = Controller(cli_prefix=FAKE, prompts=Prompts(), poll_ms=50)
    assert first.open_workspace(ws) and first.run_job("refine", ["--device", "cpu"])
    wait_until(lambda: first.summary.step >= 3, 30, "first session progress")
    first.shutdown()  # Slicer closed: the job goes on

    second = Controller(cli_prefix=FAKE, prompts=Prompts(), poll_ms=50)
    root, panels = build_module(second)
    panels.workspace.pathEdit.setText(str(ws))
    click(panels.workspace.openButton)
    assert panels.refine.startButton.text() == "Cancel" and second.busy
    wait_until(lambda: second.summary.final == "done", 30, "reattached job to finish")
    log = panels.refine.log.toPlainText()
    assert "refine started at step 0" in log and "refine finished" in log  # the whole run was replayed
    assert panels.refine.progress.value() == 1000 and panels.refine.startButton.text() == "Start"
