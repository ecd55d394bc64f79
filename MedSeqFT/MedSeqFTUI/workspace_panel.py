"""Workspace panel: create or open a workspace folder, choose the foundation model and
backbone, and show the model sequence so far (M0 -> M1 (task) -> ...)."""

from __future__ import annotations

from pathlib import Path

from .qtcompat import get, qt
from .widgets import browse_row, finish_section, hbox, section_layout
from . import workspace_files as wf

__all__ = ["WorkspacePanel"]

DEMO = "demo (built-in small model)"
BACKBONES = ["auto (from the model file)", "small_unet", "swin_unetr"]
PRESETS = ["cpu_demo", "paper"]


class WorkspacePanel:
    """Builds its widgets into ``section`` (a collapsible section of the module UI)."""

    def __init__(self, section, controller) -> None:
        self.c = controller
        layout = section_layout(section)
        form = qt.QFormLayout()
        row, self.pathEdit = browse_row("folder of the workspace (new or existing)",
                                        lambda start: qt.QFileDialog.getExistingDirectory(None, "Workspace folder", start))
        form.addRow("Workspace:", row)
        self.foundationCombo = qt.QComboBox()
        self.foundationCombo.addItem(DEMO)
        self.foundationCombo.addItem("model file...")
        frow, self.foundationEdit = browse_row("VoCo .pt/.pth, MONAI model_swinvit.pt or .safetensors",
                                               lambda start: _file_name(qt.QFileDialog.getOpenFileName(None, "Foundation model", start)))
        self.foundationCombo.currentIndexChanged.connect(lambda *_: self._update_enabled())
        form.addRow("Foundation model:", self.foundationCombo)
        form.addRow("", frow)
        self.backboneCombo = qt.QComboBox()
        for b in BACKBONES:
            self.backboneCombo.addItem(b)
        form.addRow("Backbone:", self.backboneCombo)
        self.presetCombo = qt.QComboBox()
        for p in PRESETS:
            self.presetCombo.addItem(p)
        form.addRow("Preset:", self.presetCombo)
        self.createButton = qt.QPushButton("Create workspace")
        self.openButton = qt.QPushButton("Open workspace")
        form.addRow(hbox(self.createButton, self.openButton))
        self.sequenceLabel = qt.QLabel("no workspace open")
        self.sequenceLabel.setWordWrap(True)
        form.addRow("Sequence:", self.sequenceLabel)
        self.statusLabel = finish_section(layout, form)

        self.createButton.clicked.connect(lambda *_: self.on_create())
        self.openButton.clicked.connect(lambda *_: self.on_open())
        self.c.workspaceChanged.connect(lambda *_: self.refresh())
        self.c.dataChanged.connect(self.refresh)
        self.c.busyChanged.connect(lambda *_: self._update_enabled())
        self._update_enabled()

    def _update_enabled(self) -> None:
        use_file = get(self.foundationCombo, "currentIndex") == 1
        self.foundationEdit.setEnabled(use_file)
        self.createButton.setEnabled(not self.c.busy)
        self.openButton.setEnabled(not self.c.busy)

    def init_arguments(self, folder: str) -> list:
        """The ``medseqft init`` arguments for the current choices."""
        if get(self.foundationCombo, "currentIndex") == 1:
            foundation = get(self.foundationEdit, "text").strip()
        else:
            foundation = "demo"
        args = ["init", folder, "--foundation", foundation, "--preset", get(self.presetCombo, "currentText")]
        backbone = get(self.backboneCombo, "currentText")
        if backbone in BACKBONES[1:]:
            args += ["--arch", backbone]
        return args

    def on_create(self) -> None:
        folder = get(self.pathEdit, "text").strip()
        if not folder:
            self.c.prompts.error("choose a workspace folder first")
            return
        if get(self.foundationCombo, "currentIndex") == 1 and not get(self.foundationEdit, "text").strip():
            self.c.prompts.error("choose the foundation model file, or the demo model")
            return
        if wf.is_workspace(folder):
            self.on_open()
            return
        self.statusLabel.setText("creating the workspace (loading the foundation model)...")

        def done(code, out, err):
            if code == 0:
                self.statusLabel.setText(out.strip().splitlines()[-1] if out.strip() else "workspace created")
                self.c.open_workspace(folder)
            else:
                msg = wf.last_line(err) or f"init failed (exit {code})"
                self.statusLabel.setText(msg)
                self.c.prompts.error(msg)

        self.c.run_command(self.init_arguments(folder), done)

    def on_open(self) -> None:
        folder = get(self.pathEdit, "text").strip()
        if folder and self.c.open_workspace(folder):
            self.statusLabel.setText(f"opened {folder}")

    def refresh(self) -> None:
        ws = self.c.workspace
        if ws is None:
            self.sequenceLabel.setText("no workspace open")
            return
        if get(self.pathEdit, "text").strip() != str(ws):
            self.pathEdit.setText(str(ws))
        manifest = wf.read_workspace(ws)
        arch = ((manifest.get("config") or {}).get("arch") or {}).get("name", "?")
        source = (manifest.get("foundation") or {}).get("source", "?")
        self.sequenceLabel.setText(" -> ".join(wf.model_sequence(ws)) + f"   [{arch}; foundation: {Path(str(source)).name}]")


def _file_name(result) -> str:
    """PySide6 returns ``(name, filter)``, PythonQt just the name."""
    return result[0] if isinstance(result, tuple) else result
