"""Every handler the module connects runs inside an error display (``tryWithErrorDisplay`` in
Slicer; ``prompts.error`` in these tests), and the failures the review found are now shown.

1. Source check: no raw ``.connect(`` / ``AddObserver(`` in the module's code; connections go
   through ``Guard.connect`` / ``on_click`` / ``observe`` (MedSeqFTUI/guard.py). The one raw
   connection (``slicer.app.connect("startupCompleted()", ...)``) must target a function whose
   body is a ``with slicer.util.tryWithErrorDisplay(...)`` block.
2. Every push button of the built panels is connected through the guard.
3. Failures that used to escape a handler (a volume that cannot be saved or loaded, an
   interpreter that cannot be started, a listener that raises) reach the user.
"""

import ast
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from panel_harness import app, build_module, click  # noqa: E402
from test_panels_fake_cli import FAKE, make_workspace, scene_with_views  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "MedSeqFT"
#: files that may connect raw: the guard itself, the plain-Python Signal, the PySide6 fallbacks
EXEMPT = {"guard.py", "signals.py", "pyside_shim.py"}


def _receiver(node) -> str:
    return ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""


def _wrapped_function(tree, name) -> bool:
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == name:
            first = fn.body[1] if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body[0]
            return isinstance(first, ast.With) and "tryWithErrorDisplay" in ast.unparse(first.items[0].context_expr)
    return False


def test_no_raw_connections_in_the_module_source():
    files = [MODULE / "MedSeqFT.py"] + sorted((MODULE / "MedSeqFTUI").glob("*.py"))
    problems = []
    for path in files:
        if path.name in EXEMPT:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            attr, receiver = node.func.attr, _receiver(node)
            if attr in ("connect", "observe", "on_click") and receiver.endswith("guard"):
                continue
            if attr in ("connect", "AddObserver", "addObserver"):
                handler = node.args[-1] if node.args else None
                if isinstance(handler, ast.Name) and _wrapped_function(tree, handler.id):
                    continue
                problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:90]}")
    assert not problems, "handlers connected without an error display:\n" + "\n".join(problems)


def test_every_button_is_connected_through_the_guard():
    from MedSeqFTUI.controller import Controller, Prompts
    from MedSeqFTUI.guard import GUARDED
    from MedSeqFTUI.qtcompat import qt

    app()
    controller = Controller(scene=scene_with_views(), cli_prefix=FAKE, prompts=Prompts())
    root, panels = build_module(controller)
    buttons = root.findChildren(qt.QPushButton)
    assert len(buttons) >= 14
    unguarded = [b.text() for b in buttons if not any(b is g for g in controller.guard.buttons)]
    assert not unguarded, unguarded
    assert controller.guard.handlers and all(getattr(h, GUARDED) for h in controller.guard.handlers)
    controller.shutdown()


def open_panels(tmp_path, cli=FAKE):
    from MedSeqFTUI.controller import Controller, Prompts

    app()
    ws = make_workspace(tmp_path)
    scene = scene_with_views()
    prompts = Prompts()
    controller = Controller(scene=scene, cli_prefix=cli, prompts=prompts, poll_ms=50)
    root, panels = build_module(controller)
    panels.root = root
    assert controller.open_workspace(ws)
    return controller, panels, prompts, scene


def errors(prompts):
    return [text for kind, text in prompts.messages if kind == "error"]


def test_volume_that_cannot_be_saved_is_reported(tmp_path, monkeypatch):
    """Finding: results_panel saved the volume for predict outside any error display."""
    from MedSeqFTUI import scene_glue

    controller, panels, prompts, scene = open_panels(tmp_path)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")  # only in the scene: predict must save it
    panels.results.volumeSelector.setCurrentNode(volume)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scene_glue, "save_volume", disk_full)
    click(panels.results.predictButton)
    assert errors(prompts) == ["Could not segment the volume.\n\n[Errno 28] No space left on device"]
    assert not controller.busy and panels.results.pending is None
    controller.shutdown()


def test_test_case_prediction_that_cannot_be_read_is_reported(tmp_path):
    controller, panels, prompts, scene = open_panels(tmp_path)
    pred_dir = controller.workspace / "metrics" / "predictions" / "liver"
    pred_dir.mkdir(parents=True)
    (pred_dir / "c4.nii.gz").write_bytes(b"not an image")
    click(panels.results.loadTestButton)
    (message,) = errors(prompts)
    assert message.startswith("Could not load the test-case predictions.") and "cannot be read as an image" in message
    controller.shutdown()


def test_interpreter_that_cannot_start_is_reported(tmp_path):
    """Finding: an OSError from starting the job process escaped the Refinement panel's handler."""
    controller, panels, prompts, scene = open_panels(tmp_path, cli=[str(tmp_path / "no" / "PythonSlicer"), "-m", "MedSeqFTLib"])
    click(panels.refine.startButton)
    (message,) = errors(prompts)
    assert message.startswith("Could not start or cancel the refinement.") and "No such file" in message
    assert controller.job is None and not controller.busy and panels.refine.startButton.text() == "Start"
    controller.shutdown()


def test_listener_that_raises_is_reported(tmp_path, monkeypatch):
    """Finding: signals.py only logged a listener's exception; now the listener is wrapped."""
    controller, panels, prompts, scene = open_panels(tmp_path)

    def broken():
        raise KeyError("dice")

    monkeypatch.setattr(panels.results, "refresh_check", broken)
    controller.dataChanged.emit()
    assert "Could not show the results.\n\n'dice'" in errors(prompts)
    assert panels.tasks.table.rowCount() == 1  # the other listeners still ran
    controller.shutdown()


def test_guard_outside_slicer_reports_and_logs(caplog):
    from MedSeqFTUI.guard import Guard

    shown = []
    guard = Guard(report=shown.append)
    handler = guard.wrap("Could not do it.", lambda x: 1 / x)
    assert handler(2) == 0.5
    with caplog.at_level("ERROR", logger="MedSeqFT"):
        assert handler(0) is None
    assert shown == ["Could not do it.\n\ndivision by zero"]
    assert "ZeroDivisionError" in caplog.text  # the traceback is in the application log


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_guard_uses_slicers_display_when_set():
    import contextlib

    from MedSeqFTUI.guard import Guard

    seen = []

    @contextlib.contextmanager
    def try_with_error_display(message, wait):
        try:
            yield
        except Exception as exc:
            seen.append((message, wait, str(exc)))
            raise

    guard = Guard(report=lambda text: pytest.fail("fallback used"), display=try_with_error_display)
    guard.wrap("Could not click.", lambda: [][1], wait_cursor=True)()
    assert seen == [("Could not click.", True, "list index out of range")]
