"""The ``adapter`` task mode in the panels (real Qt widgets, PySide6 offscreen, driven by clicks):

- Tasks: the mode box; method, shots (K) and seed, transductive enabled only where they apply;
  the ``add-task`` command built for each mode (exact lines, recorded by fake_cli.py); the table
  shows each task's mode, method and shots.
- Workspace: adapter tasks beside the shared sequence (``A2 (spleen: linear_probe on M1)``).
- Refinement: the ``adapter`` stage of refine's progress events has a name on the Stage line.
- Results: an adapter task with ``adapter.safetensors`` + ``record.json`` is a finished model
  (listed, segmented, overlaid); "Transductive" only for black-box adapter tasks, passed as
  ``predict --transductive``.
- The same ``add-task`` command against the real library CLI (mode recorded in ``task.json``,
  support drawn; bitfit refused on the small U-Net, its one line shown inline).

The workspaces here are written by the test (``task.json`` + model files, no torch).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from panel_harness import app, build_module, click, screenshot, wait_until  # noqa: E402
from test_panels_fake_cli import FAKE, make_workspace, scene_with_views, write_img  # noqa: E402
from test_panels_scene import add_volume  # noqa: E402

LINEAR = {"method": "linear_probe", "shots": 2, "shots_seed": 0, "support": ["c0", "c2"], "transductive": False}
LORA = {"method": "lora", "shots": None, "shots_seed": 0, "support": ["c0", "c1", "c2", "c3"], "transductive": False}


def add_task(ws: Path, name: str, status: str, mode=None, adapter=None, files=()) -> None:
    """Append task ``name`` (liver's cases and labels) with its model files (empty: never read here)."""
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest["tasks"].append(name)
    (ws / "workspace.json").write_text(json.dumps(manifest))
    rec = dict(json.loads((ws / "tasks" / "liver" / "task.json").read_text()), name=name, status=status)
    if mode is not None:
        rec["mode"] = mode
    if adapter is not None:
        rec["adapter"] = adapter
    (ws / "tasks" / name / "model").mkdir(parents=True)
    (ws / "tasks" / name / "task.json").write_text(json.dumps(rec))
    for f in files:
        (ws / "tasks" / name / "model" / f).write_text("{}" if f.endswith(".json") else "")


def adapter_workspace(tmp_path: Path) -> Path:
    """liver (kg_rft, no "mode": written before modes existed) done; spleen (adapter, linear
    probe, 2 shots) done; pancreas (adapter, lora) done; kidney (adapter) "done" but without its
    adapter.safetensors; heart (kg_rft) added."""
    ws = make_workspace(tmp_path)
    add_task(ws, "spleen", "done", "adapter", LINEAR, ("adapter.safetensors", "record.json"))
    add_task(ws, "pancreas", "done", "adapter", LORA, ("adapter.safetensors", "record.json"))
    add_task(ws, "kidney", "done", "adapter", dict(LINEAR, shots=None), ("record.json",))
    add_task(ws, "heart", "added", "kg_rft")
    return ws


def open_panels(ws, scene=None, cli=FAKE, env=None):
    from MedSeqFTUI.controller import Controller, Prompts

    app()
    prompts = Prompts()
    controller = Controller(scene=scene, cli_prefix=cli, env=env, prompts=prompts, poll_ms=50)
    root, panels = build_module(controller)
    panels.root = root  # keeps the widgets alive
    panels.workspace.pathEdit.setText(str(ws))
    click(panels.workspace.openButton)
    assert controller.workspace == ws
    return controller, panels, prompts


def calls(ws):
    path = ws / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def choose(combo, text):
    index = combo.findText(text)
    assert index >= 0, (text, [combo.itemText(i) for i in range(combo.count())])
    combo.setCurrentIndex(index)


def enabled(tasks):
    return {w: getattr(tasks, w).isEnabled() for w in ("methodCombo", "shotsSpin", "shotsSeedSpin", "transductiveCheck")}


def test_gui_choices_match_the_library():
    """The panel's fixed lists and its model-file rule are the library's (read without torch)."""
    from MedSeqFTLib.adapters import base, config
    from MedSeqFTUI import choices
    from MedSeqFTUI import workspace_files as wf

    assert sorted(choices.ADAPTER_METHODS) == sorted(config.METHODS)
    assert choices.ADAPTER_METHODS[0] == "spatial_adapter"  # add-task's default method
    assert sorted(choices.BLACK_BOX_METHODS) == sorted(config.BLACK_BOX)
    assert tuple(choices.MODE_VALUES) == tuple(config.MODES)
    for rec in ({}, {"mode": "kg_rft"}, {"mode": "adapter", "adapter": LINEAR}):
        assert wf.model_files(rec) == base.model_files(rec)
        assert wf.task_mode(rec) == base.task_mode(rec)


def test_add_task_command_for_each_mode(tmp_path, artifacts_dir):
    ws = adapter_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    tasks = panels.tasks
    dataset = tmp_path / "data"
    tasks.datasetEdit.setText(str(dataset))
    assert [tasks.modeCombo.itemText(i) for i in range(tasks.modeCombo.count())] == [
        "MedSeqFT K&G RFT", "Adapter (few-shot, frozen base)"]
    assert tasks.shotsSpin.text() == "all"

    def add():
        click(tasks.addButton)
        wait_until(lambda: not controller.busy, 30, "add-task")

    # K&G RFT (the default): no adapter setting applies, none is passed
    assert enabled(tasks) == dict.fromkeys(enabled(tasks), False)
    add()
    # adapter: the default method (spatial_adapter, black box) allows transductive; the seed waits for K
    choose(tasks.modeCombo, "Adapter (few-shot, frozen base)")
    assert enabled(tasks) == {"methodCombo": True, "shotsSpin": True, "shotsSeedSpin": False, "transductiveCheck": True}
    add()
    choose(tasks.methodCombo, "linear_probe")
    tasks.shotsSpin.setValue(3)
    assert tasks.shotsSeedSpin.isEnabled()
    tasks.shotsSeedSpin.setValue(7)
    tasks.transductiveCheck.setChecked(True)
    tasks.nameEdit.setText("spleen_3shot")
    add()
    screenshot(panels.sections["tasks"], artifacts_dir / "adapter" / "tasks.png")
    # lora sees more than the frozen features: no transductive (the tick is kept but not passed)
    choose(tasks.methodCombo, "lora")
    assert not tasks.transductiveCheck.isEnabled() and tasks.transductiveCheck.isChecked()
    tasks.shotsSpin.setValue(0)
    assert not tasks.shotsSeedSpin.isEnabled()
    tasks.nameEdit.setText("")
    add()
    # back to K&G RFT: the adapter settings are kept in the boxes, none is passed
    choose(tasks.modeCombo, "MedSeqFT K&G RFT")
    assert enabled(tasks) == dict.fromkeys(enabled(tasks), False)
    add()
    assert calls(ws) == [
        f"add-task {dataset}",
        f"add-task {dataset} --mode adapter --method spatial_adapter",
        f"add-task {dataset} --name spleen_3shot --mode adapter --method linear_probe --shots 3 --shots-seed 7 --transductive",
        f"add-task {dataset} --mode adapter --method lora",
        f"add-task {dataset}",
    ]
    assert not [m for m in prompts.messages if m[0] == "error"], prompts.messages
    controller.shutdown()


def test_adapter_tasks_in_the_tables_and_the_sequence(tmp_path):
    ws = adapter_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    table = panels.tasks.table
    assert table.horizontalHeaderItem(5).text() == "mode"
    assert [(table.item(r, 0).text(), table.item(r, 4).text(), table.item(r, 5).text()) for r in range(table.rowCount())] == [
        ("liver", "done", "K&G RFT"), ("spleen", "done", "adapter linear_probe, 2 shots"),
        ("pancreas", "done", "adapter lora, all cases"), ("kidney", "done", "adapter linear_probe, all cases"),
        ("heart", "added", "K&G RFT")]
    label = panels.workspace.sequenceLabel.text()
    assert label.startswith("M0 -> M1 (liver)   [small_unet")
    # kidney has status done but no adapter file: like medseqft status, a finished-looking task counts
    # in the sequence line; predicting needs every model file (the Results list below)
    assert label.endswith("adapter tasks (frozen base + own modules): A2 (spleen: linear_probe on M1), "
                          "A3 (pancreas: lora on M1), A4 (kidney: linear_probe on M1)")
    combo = panels.results.taskCombo
    assert [combo.itemText(i) for i in range(combo.count())] == ["liver", "spleen", "pancreas"]
    controller.shutdown()


def test_refine_shows_the_adapter_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_STAGE", "adapter")
    monkeypatch.setenv("FAKE_CLI_TASK", "spleen")
    monkeypatch.setenv("FAKE_CLI_STEPS", "20")
    monkeypatch.setenv("FAKE_CLI_STEP_S", "0.05")
    ws = adapter_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    refine = panels.refine
    click(refine.startButton)
    wait_until(lambda: controller.summary.step >= 2, 30, "adapter progress")
    assert refine.stageLabel.text() == "adapter training (frozen base)" and refine.taskLabel.text() == "spleen"
    wait_until(lambda: controller.summary.final == "done", 30, "refine to finish")
    assert "[adapter/spleen] refine finished" in refine.log.toPlainText()
    controller.shutdown()


@pytest.fixture
def results(tmp_path, monkeypatch):
    """The Results panel on adapter_workspace with a scene volume; ``run_job`` records."""
    ws = adapter_workspace(tmp_path)
    scene = scene_with_views()
    controller, panels, prompts = open_panels(ws, scene=scene)
    started = []
    monkeypatch.setattr(controller, "run_job", lambda command, args=(): started.append((command, list(args))) or True)
    volume = add_volume(scene, "CT", 3.0)
    panels.results.volumeSelector.setCurrentNode(volume)
    yield controller, panels, started, volume, prompts
    controller.shutdown()


def test_segment_volume_with_an_adapter_task(results, tmp_path, artifacts_dir):
    from MedSeqFTUI import scene_glue
    from MedSeqFTUI.events import JobSummary

    controller, panels, started, volume, prompts = results
    res = panels.results
    check = res.transductiveCheck
    for task, black_box in (("liver", False), ("pancreas", False), ("spleen", True)):
        choose(res.taskCombo, task)
        assert check.isEnabled() is black_box, task
    check.setChecked(True)
    click(res.predictButton)
    command, args = started[-1]
    out = controller.workspace / "predictions" / "spleen"
    assert command == "predict" and args[:5] == ["--task", "spleen", "--out", str(out), "--transductive"]
    assert len(args) == 6 and args[5].endswith(".nii.gz")  # the image comes last (predict's IMAGE...)
    assert "transductive" in res.statusLabel.text()
    # the adapter task's prediction is overlaid like any other
    image = Path(res.pending["image"])
    out.mkdir(parents=True, exist_ok=True)
    pred = np.zeros((8, 8, 8), np.uint8)
    pred[2:5, 2:5, 2:5] = 1
    write_img(out / image.name, pred)
    res.on_job_finished("done", JobSummary(), "predict")
    assert len(res.overlays) == 1 and scene_glue.segment_names(res.overlays[0]) == ["liver"]
    assert res.overlays[0].GetAttribute("MedSeqFT.prediction") == "spleen"
    screenshot(panels.sections["results"], artifacts_dir / "adapter" / "results.png")
    # a white-box adapter task and a kg_rft task: the tick does not apply and is not passed
    for task in ("pancreas", "liver"):
        choose(res.taskCombo, task)
        assert not check.isEnabled() and check.isChecked()
        click(res.predictButton)
        assert "--transductive" not in started[-1][1] and started[-1][1][1] == task
    assert not [m for m in prompts.messages if m[0] == "error"], prompts.messages


def test_adapter_task_with_the_real_cli(tmp_path):
    """The built command against the real ``medseqft add-task`` (no training; ~20 s of add-task)."""
    from MedSeqFTUI.jobprocess import library_env

    env = library_env()
    env["OMP_NUM_THREADS"] = "1"
    cli = [sys.executable, "-m", "MedSeqFTLib"]
    ws = tmp_path / "ws"

    def run(*args):
        subprocess.run(cli + [str(a) for a in args], env=env, check=True, capture_output=True, timeout=300)

    run("init", ws, "--foundation", "demo", "--preset", "cpu_demo")
    run("phantoms", tmp_path / "data", "--tasks", "1", "--cases", "5", "--size", "32")
    dataset = next((tmp_path / "data").iterdir())
    controller, panels, prompts = open_panels(ws, cli=cli, env=env)
    tasks = panels.tasks
    tasks.datasetEdit.setText(str(dataset))
    tasks.nameEdit.setText("few")
    choose(tasks.modeCombo, "Adapter (few-shot, frozen base)")
    choose(tasks.methodCombo, "linear_probe")
    tasks.shotsSpin.setValue(2)
    tasks.shotsSeedSpin.setValue(1)
    tasks.transductiveCheck.setChecked(True)
    click(tasks.addButton)
    wait_until(lambda: not controller.busy, 240, "add-task --mode adapter")
    assert "c62828" not in tasks.statusLabel.styleSheet(), tasks.statusLabel.text()
    rec = json.loads((ws / "tasks" / "few" / "task.json").read_text())
    assert rec["mode"] == "adapter"
    ad = rec["adapter"]
    assert (ad["method"], ad["shots"], ad["shots_seed"], ad["transductive"]) == ("linear_probe", 2, 1, True)
    assert len(ad["support"]) == 2 and set(ad["support"]) <= set(rec["split"]["train"])
    assert "adapter task: linear_probe on 2 support case(s)" in tasks.statusLabel.text()
    assert [tasks.table.item(0, c).text() for c in (0, 4, 5)] == ["few", "added", "adapter linear_probe, 2 shots, transductive"]
    # bitfit on the small U-Net (no biases): the library's one line, inline, nothing added
    tasks.nameEdit.setText("bias")
    choose(tasks.methodCombo, "bitfit")
    assert not tasks.transductiveCheck.isEnabled()
    click(tasks.addButton)
    wait_until(lambda: not controller.busy, 240, "add-task --method bitfit")
    assert "c62828" in tasks.statusLabel.styleSheet() and "bitfit" in tasks.statusLabel.text()
    assert json.loads((ws / "workspace.json").read_text())["tasks"] == ["few"]
    assert not [m for m in prompts.messages if m[0] == "error"], prompts.messages
    controller.shutdown()
