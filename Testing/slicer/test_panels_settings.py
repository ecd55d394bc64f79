"""Settings through the CLI, on real Qt widgets (PySide6 offscreen), driven by clicks and typing.

- Refinement: Start records changed Iterations / LoRA rank / K with ``plan WS --set ...`` in
  the background and only then starts refine; a refused value is shown inline, no refine.
- Advanced settings: the table of ``plan WS --json`` per task or for all tasks; edit a value +
  Apply (``--set``), Reset an override (``--unset``), refusals inline, refined tasks read-only.
  Once against fake_cli.py (exact command lines) and once against the real library CLI.
- Tasks: the modality box becomes ``add-task --modality``.
- Results: classes never predicted after training (``status --json``) in red next to the task.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("slicer")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from panel_harness import app, build_module, click, screenshot, wait_until  # noqa: E402
from test_panels_fake_cli import FAKE, make_workspace  # noqa: E402

PLAN = {"values": {"preprocess.spacing": [1.5, 1.5, 2.0], "preprocess.patch_size": [64, 64, 32],
                   "preprocess.normalization": "zscore"},
        "reasons": {"preprocess.spacing": "median spacing of 4 cases", "preprocess.patch_size": "fits 160 MB",
                    "preprocess.normalization": "MR: per-image z-score"}}


def fake_workspace(tmp_path: Path) -> Path:
    """make_workspace's refined ``liver`` (with a failed class) plus an added ``spleen`` with a plan."""
    ws = make_workspace(tmp_path)
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest["tasks"].append("spleen")
    manifest["config"]["retention"] = {"fft": {"iterations": 1000}, "kd_fft": {"iterations": 1000},
                                       "lora_kd": {"iterations": 200}, "lora_rank": 2}
    (ws / "workspace.json").write_text(json.dumps(manifest))
    liver = json.loads((ws / "tasks" / "liver" / "task.json").read_text())
    liver["plan"] = PLAN
    (ws / "tasks" / "liver" / "task.json").write_text(json.dumps(liver))
    (ws / "tasks" / "liver" / "model" / "record.json").write_text(json.dumps({
        "failed_classes": ["tumour"], "validation": {"M_t": {"dice": 40.5, "classes": {"liver": 81.0, "tumour": 0.0}}}}))
    (ws / "tasks" / "spleen").mkdir()
    (ws / "tasks" / "spleen" / "task.json").write_text(json.dumps(dict(liver, name="spleen", status="added")))
    return ws


def open_panels(ws, cli=FAKE, env=None):
    from MedSeqFTUI.controller import Controller, Prompts

    app()
    prompts = Prompts()
    controller = Controller(cli_prefix=cli, env=env, prompts=prompts, poll_ms=50)
    root, panels = build_module(controller)
    panels.root = root  # keeps the widgets alive
    panels.workspace.pathEdit.setText(str(ws))
    click(panels.workspace.openButton)
    assert controller.workspace == ws
    return controller, panels, prompts


def calls(ws):
    path = ws / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def cell(table, r, c):
    return table.item(r, c).text()


def row_of(table, key):
    keys = [cell(table, r, 0) for r in range(table.rowCount())]
    assert key in keys, keys
    return keys.index(key)


def edit_value(table, key, text):
    """Double-click the value cell of ``key``, type ``text``, press Enter (the real editor)."""
    r = row_of(table, key)
    table.scrollToItem(table.item(r, 1))
    rect = table.visualRect(table.model().index(r, 1))
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    QTest.mouseDClick(table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    editor = QApplication.focusWidget()
    assert editor is not None and editor is not table, "no cell editor opened"
    editor.selectAll()
    QTest.keyClicks(editor, text)
    QTest.keyClick(editor, Qt.Key_Return)
    app().processEvents()  # the delegate commits the editor's text through a queued call
    assert cell(table, r, 1) == text


def select_task(advanced, name, rows_min=1):
    advanced.taskCombo.setCurrentIndex(advanced.taskCombo.findText(name))
    assert advanced.table.rowCount() >= rows_min


def test_start_records_changed_values_then_refines(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_PLAN_DELAY_S", "0.6")
    monkeypatch.setenv("FAKE_CLI_STEPS", "5")
    ws = fake_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    refine = panels.refine
    assert refine.iterationsSpin.value() == 1000 and refine.rankSpin.value() == 2 and refine.kSpin.value() == 0
    refine.iterationsSpin.setValue(52)
    refine.rankSpin.setValue(3)
    refine.kSpin.setValue(2)
    t0 = time.perf_counter()
    click(refine.startButton)
    assert time.perf_counter() - t0 < 0.3  # the GUI thread does not wait for plan
    assert controller.job is None and controller.busy and not refine.startButton.isEnabled()
    wait_until(lambda: controller.job is not None, 30, "refine to start after plan")
    assert calls(ws) == ["plan --set retention.fft.iterations=52 --set retention.kd_fft.iterations=52 "
                         "--set retention.lora_kd.iterations=10 --set retention.lora_rank=3 --set selection.k=2"]
    assert json.loads((ws / "workspace.json").read_text())["overrides"] == {
        "retention.fft.iterations": 52, "retention.kd_fft.iterations": 52, "retention.lora_kd.iterations": 10,
        "retention.lora_rank": 3, "selection.k": 2}
    wait_until(lambda: controller.summary.final == "done", 30, "refine to finish")
    assert refine.errorLabel.text() == "" and not [m for m in prompts.messages if m[0] == "error"]
    # nothing changed since: Start runs refine without plan; K back to auto records null
    click(refine.startButton)
    wait_until(lambda: not controller.busy, 30, "second refine")
    assert len(calls(ws)) == 1
    refine.kSpin.setValue(0)
    click(refine.startButton)
    wait_until(lambda: not controller.busy and len(calls(ws)) == 2, 30, "third refine")
    assert calls(ws)[-1] == "plan --set selection.k=null"
    controller.shutdown()


def test_refused_value_is_shown_inline_and_refine_not_started(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_PLAN_REFUSE", "retention.lora_rank")
    ws = fake_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    panels.refine.rankSpin.setValue(40)
    click(panels.refine.startButton)
    wait_until(lambda: not controller.busy, 30, "plan to refuse")
    assert panels.refine.errorLabel.text() == "medseqft plan: error: retention.lora_rank: must be <= 16, got 40"
    assert controller.job is None and not (ws / "jobs").exists() and calls(ws) == []
    assert not [m for m in prompts.messages if m[0] == "error"]  # inline, no pop-up
    assert panels.refine.startButton.text() == "Start" and panels.refine.startButton.isEnabled()
    controller.shutdown()


def test_advanced_settings_with_fake_cli(tmp_path, artifacts_dir):
    ws = fake_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    adv = panels.refine.advanced
    assert adv.section.property("collapsed") is True
    adv.section.setProperty("collapsed", False)
    wait_until(lambda: adv.taskCombo.count() == 3, 30, "plan --json")
    assert [adv.taskCombo.itemText(i) for i in range(3)] == ["all tasks", "liver", "spleen"]
    select_task(adv, "spleen", 3)
    table = adv.table
    r = row_of(table, "preprocess.spacing")
    assert [cell(table, r, c) for c in range(4)] == ["preprocess.spacing", "[1.5, 1.5, 2.0]", "plan",
                                                     "median spacing of 4 cases"]
    # edit + Apply -> plan --task spleen --set; the row becomes a task override
    edit_value(table, "preprocess.spacing", "2,2,2")
    click(adv.applyButton)
    wait_until(lambda: cell(table, row_of(table, "preprocess.spacing"), 2) == "task override", 30, "set")
    assert calls(ws) == ["plan --task spleen --set preprocess.spacing=2,2,2"]
    assert cell(table, row_of(table, "preprocess.spacing"), 1) == "[2, 2, 2]"
    assert adv.messageLabel.text().startswith("recorded for spleen")
    # Reset is for overridden rows only; it unsets
    table.selectRow(row_of(table, "preprocess.patch_size"))
    assert not adv.resetButton.isEnabled()
    table.selectRow(row_of(table, "preprocess.spacing"))
    click(adv.resetButton)
    wait_until(lambda: cell(table, row_of(table, "preprocess.spacing"), 2) == "plan", 30, "unset")
    assert calls(ws)[-1] == "plan --task spleen --unset preprocess.spacing"
    # a refused value: the CLI's line, in red, under the table; no pop-up
    controller.env["FAKE_CLI_PLAN_REFUSE"] = "preprocess.normalization"  # the controller's copy of the env
    edit_value(table, "preprocess.normalization", "magic")
    click(adv.applyButton)
    wait_until(lambda: "must be" in adv.messageLabel.text(), 30, "refusal")
    assert adv.messageLabel.text() == "medseqft plan: error: preprocess.normalization: must be <= 16, got magic"
    assert "c62828" in adv.messageLabel.styleSheet()
    assert not [m for m in prompts.messages if m[0] == "error"]
    # all tasks: only tasks still to train; Apply records a workspace-wide override
    select_task(adv, "all tasks", 3)
    edit_value(table, "preprocess.patch_size", "[32, 32, 32]")
    click(adv.applyButton)
    wait_until(lambda: cell(table, row_of(table, "preprocess.patch_size"), 2) == "workspace override", 30, "ws set")
    assert calls(ws)[-1] == "plan --set preprocess.patch_size=[32, 32, 32]"
    screenshot(panels.sections["refine"], artifacts_dir / "settings" / "advanced_settings.png")
    # a refined task is read-only
    select_task(adv, "liver", 3)
    assert not adv.applyButton.isEnabled() and "refined" in adv.messageLabel.text()
    item = table.item(row_of(table, "preprocess.spacing"), 1)
    assert not item.flags() & Qt.ItemIsEditable
    controller.shutdown()


def test_modality_box_is_passed_to_add_task(tmp_path):
    ws = fake_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    dataset = tmp_path / "data"
    tasks = panels.tasks
    assert [tasks.modalityCombo.itemText(i) for i in range(tasks.modalityCombo.count())] == ["auto", "CT", "MR", "PET", "other"]
    tasks.datasetEdit.setText(str(dataset))
    tasks.modalityCombo.setCurrentIndex(tasks.modalityCombo.findText("MR"))
    click(tasks.addButton)
    wait_until(lambda: not controller.busy, 30, "add-task")
    tasks.modalityCombo.setCurrentIndex(0)
    click(tasks.addButton)
    wait_until(lambda: not controller.busy, 30, "add-task auto")
    assert calls(ws) == [f"add-task {dataset} --modality MR", f"add-task {dataset}"]
    controller.shutdown()


def test_failed_classes_in_red_next_to_the_task(tmp_path, artifacts_dir):
    ws = fake_workspace(tmp_path)
    controller, panels, prompts = open_panels(ws)
    table = panels.results.checkTable
    wait_until(lambda: table.rowCount() == 1, 30, "status --json")
    assert [cell(table, 0, c) for c in range(4)] == ["liver", "tumour never predicted", "40.5", "liver 81.0, tumour 0.0"]
    assert table.item(0, 1).foreground().color() == QColor("#c62828")
    assert table.item(0, 3).foreground().color() != QColor("#c62828")
    screenshot(panels.sections["results"], artifacts_dir / "settings" / "results_failed_classes.png")
    controller.shutdown()


def test_advanced_settings_with_the_real_cli(tmp_path):
    """The same table against the real ``medseqft plan`` (~20 s, most of it add-task sizing the patch)."""
    from MedSeqFTUI.jobprocess import library_env

    env = library_env()
    cli = [sys.executable, "-m", "MedSeqFTLib"]
    ws = tmp_path / "ws"

    def run(*args):
        subprocess.run(cli + [str(a) for a in args], env=env, check=True, capture_output=True, timeout=300)

    run("init", ws, "--foundation", "demo", "--preset", "cpu_demo")
    run("phantoms", tmp_path / "data", "--tasks", "1", "--cases", "4", "--size", "32")
    run("add-task", ws, next((tmp_path / "data").iterdir()), "--device", "cpu")
    names = json.loads((ws / "workspace.json").read_text())["tasks"]
    controller, panels, prompts = open_panels(ws, cli=cli, env=env)
    adv = panels.refine.advanced
    adv.section.setProperty("collapsed", False)
    wait_until(lambda: adv.taskCombo.count() == 2, 60, "plan --json")
    select_task(adv, names[0], 4)
    table = adv.table
    r = row_of(table, "preprocess.spacing")
    assert cell(table, r, 2) == "plan" and cell(table, r, 3)
    edit_value(table, "preprocess.spacing", "2,2,2")
    click(adv.applyButton)
    wait_until(lambda: cell(table, row_of(table, "preprocess.spacing"), 2) == "task override", 60, "set")
    assert json.loads(cell(table, row_of(table, "preprocess.spacing"), 1)) == [2, 2, 2]
    task_json = json.loads((ws / "tasks" / names[0] / "task.json").read_text())
    assert task_json["overrides"] == {"preprocess.spacing": [2, 2, 2]}
    table.selectRow(row_of(table, "preprocess.spacing"))
    click(adv.resetButton)
    wait_until(lambda: cell(table, row_of(table, "preprocess.spacing"), 2) == "plan", 60, "unset")
    # the library refuses a bad value: its one line, inline
    edit_value(table, "preprocess.normalization", "magic")
    click(adv.applyButton)
    wait_until(lambda: "error" in adv.messageLabel.text(), 60, "refusal")
    assert "preprocess.normalization" in adv.messageLabel.text() and "magic" in adv.messageLabel.text()
    assert not [m for m in prompts.messages if m[0] == "error"]
    # all tasks -> workspace override; the Refinement panel's Iterations follows
    select_task(adv, "all tasks", 4)
    edit_value(table, "retention.fft.iterations", "77")
    click(adv.applyButton)
    wait_until(lambda: panels.refine.iterationsSpin.value() == 77, 60, "workspace-wide set")
    assert json.loads((ws / "workspace.json").read_text())["overrides"] == {"retention.fft.iterations": 77}
    wait_until(lambda: cell(table, row_of(table, "retention.fft.iterations"), 2) == "workspace override", 60, "row")
    controller.shutdown()
