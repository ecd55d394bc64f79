"""The complete tiny sequence through the panels, with the real library in the background.

Clicks only (PySide6 offscreen + a real slicer-core MRML scene): create a workspace around the
demo M0 (preset cpu_demo) -> add two phantom tasks -> buffer preview (MDS) and load a case ->
refine with tiny iterations -> Cancel -> Resume -> evaluate -> segment a scene volume and
overlay it -> load the test-case predictions. Prints the longest main-thread stall while the
jobs run and saves a screenshot of every panel (Testing/artifacts/real_job/).

Uses the demo M0 shipped in MedSeqFTLib/resources (no pretraining); about 1-2 minutes on 2 CPU
cores, part of the default run because it is the only end-to-end check of the GUI on a real job.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from panel_harness import StallWatchdog, app, build_module, click, click_row, screenshot, wait_until  # noqa: E402

ITERATIONS = 24


def test_real_sequence_through_the_panels(tmp_path, artifacts_dir):
    from MedSeqFTUI import scene_glue
    from MedSeqFTUI.controller import Controller, Prompts
    from MedSeqFTUI.jobprocess import library_env

    app()
    env = library_env()
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    cli = [sys.executable, "-m", "MedSeqFTLib"]
    subprocess.run(cli + ["phantoms", str(tmp_path / "data"), "--tasks", "2", "--cases", "5", "--size", "32"],
                   env=env, check=True, capture_output=True)
    datasets = sorted((tmp_path / "data").iterdir())
    scene = slicer.vtkMRMLScene()
    for _ in range(3):
        scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    prompts = Prompts()
    controller = Controller(scene=scene, cli_prefix=cli, env=env, prompts=prompts, poll_ms=200)
    root, panels = build_module(controller)
    watchdog = StallWatchdog()
    watchdog.start()

    # Workspace: create around the demo M0
    ws = tmp_path / "ws"
    panels.workspace.pathEdit.setText(str(ws))
    panels.workspace.presetCombo.setCurrentIndex(0)  # cpu_demo
    click(panels.workspace.createButton)
    wait_until(lambda: controller.workspace == ws, 240, "init")
    assert panels.workspace.sequenceLabel.text().startswith("M0")

    # Tasks: two dataset folders
    for i, d in enumerate(datasets):
        panels.tasks.datasetEdit.setText(str(d))
        click(panels.tasks.addButton)
        wait_until(lambda: not controller.busy and panels.tasks.table.rowCount() == i + 1, 120, f"add-task {d.name}")
    assert [panels.tasks.table.item(r, 4).text() for r in range(2)] == ["added", "added"]

    # Buffer preview for both tasks (tiny run budget), then load the best case
    buffer = panels.buffer
    buffer.runsSpin.setValue(4)
    for index in (1, 0):
        buffer.taskCombo.setCurrentIndex(index)
        click(buffer.runButton)
        wait_until(lambda: not controller.busy, 240, "select")
        assert controller.summary.final == "done", controller.summary.message
    rows = [buffer.table.item(r, 1).text() for r in range(buffer.table.rowCount())]
    assert rows and all(rows) and [float(x) for x in rows] == sorted(float(x) for x in rows)
    assert any(buffer.table.item(r, 4).text().startswith("selected") for r in range(buffer.table.rowCount()))
    click_row(buffer.table, 0)
    case_volume, case_seg = buffer.loaded
    assert scene_glue.segment_names(case_seg)

    # Refinement: Start -> Cancel mid-way -> Resume -> done
    refine = panels.refine
    refine.deviceCombo.setCurrentIndex(1)  # cpu
    refine.iterationsSpin.setValue(ITERATIONS)
    click(refine.startButton)  # records the iterations with "plan --set" first, then starts refine
    wait_until(lambda: refine.startButton.text() == "Cancel" or refine.errorLabel.text(), 120, "plan --set, then refine")
    assert refine.startButton.text() == "Cancel", refine.errorLabel.text()
    overrides = json.loads((ws / "workspace.json").read_text())["overrides"]
    assert overrides["retention.fft.iterations"] == ITERATIONS and overrides["retention.lora_kd.iterations"] == ITERATIONS // 5
    wait_until(lambda: controller.summary.step >= 3 or not controller.busy, 240, "refine progress")
    assert controller.busy, f"refine ended before Cancel: {controller.summary.final} {controller.summary.message}"
    screenshot(panels.sections["refine"], artifacts_dir / "real_job" / "refine_running.png")
    click(refine.startButton)
    wait_until(lambda: not controller.busy, 240, "cancel")
    assert controller.summary.final == "cancelled", (controller.summary.final, controller.summary.message)
    assert refine.resumeButton.isEnabled() and refine.startButton.text() == "Start"
    click(refine.resumeButton)
    wait_until(lambda: not controller.busy, 600, "resumed refine")
    assert controller.summary.final == "done", controller.summary.message
    assert [panels.tasks.table.item(r, 4).text() for r in range(2)] == ["done", "done"]
    assert "M2" in panels.workspace.sequenceLabel.text()
    names = [ws / "tasks" / n / "model" / "encoder.safetensors" for n in (panels.tasks.table.item(r, 0).text() for r in range(2))]
    assert all(p.is_file() for p in names)

    # Results: each task's check right after training (status --json), failed classes in red
    results = panels.results
    wait_until(lambda: results.checkTable.rowCount() == 2, 60, "status --json")
    for r in range(2):
        failed = results.checkTable.item(r, 1).text()
        assert failed == "" or failed.endswith("never predicted")
    # evaluate, then segment the loaded case and overlay it
    click(results.evaluateButton)
    wait_until(lambda: not controller.busy, 300, "evaluate")
    assert controller.summary.final == "done", controller.summary.message
    assert results.metricsTable.rowCount() == 2 and results.forgettingTable.rowCount() >= 2
    results.volumeSelector.setCurrentNode(case_volume)
    results.taskCombo.setCurrentIndex(results.taskCombo.findText(buffer.current_task()))
    click(results.predictButton)
    wait_until(lambda: not controller.busy, 300, "predict")
    assert controller.summary.final == "done", controller.summary.message
    assert results.overlays, results.statusLabel.text()
    overlay = results.overlays[-1]
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    assert overlay.GetNodeReference(role).GetID() == case_volume.GetID()
    assert set(scene_glue.segment_names(overlay)) <= set(scene_glue.segment_names(case_seg)) | {"label_%d" % i for i in range(10)}
    click(results.loadTestButton)
    assert len(results.overlays) >= 2
    watchdog.stop()
    print(f"\nlongest main-thread stall while real jobs ran: {watchdog.worst_ms:.1f} ms over {watchdog.ticks} ticks")
    assert not [m for m in prompts.messages if m[0] == "error"], prompts.messages

    shots = artifacts_dir / "real_job"
    for attr, section in panels.sections.items():
        screenshot(section, shots / f"{attr}.png")
    screenshot(root, shots / "module.png")
    controller.shutdown()
