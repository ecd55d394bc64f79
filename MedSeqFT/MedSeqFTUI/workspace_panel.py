"""Workspace panel: create or open a workspace folder, choose the foundation model and
backbone, and show the model sequence so far (M0 -> M1 (task) -> ...) and the adapter tasks beside it
(A2 (task: method on M1): a frozen shared model plus the task's own modules)."""

from __future__ import annotations

from pathlib import Path

from .choices import BACKBONES, DEMO, FOUNDATION_SOURCES, PRESETS
from .qtcompat import get, qt
from .widgets import browse_row, finish_section, hbox, section_layout, set_status
from . import workspace_files as wf

__all__ = ["WorkspacePanel", "DEMO", "BACKBONES", "PRESETS"]


class WorkspacePanel:
    """Builds its widgets into ``section`` (a collapsible section of the module UI)."""

    def __init__(self, section, controller) -> None:
        self.c = controller
        layout = section_layout(section)
        form = qt.QFormLayout()
        guard = controller.guard
        row, self.pathEdit = browse_row("folder of the workspace (new or existing)",
                                        lambda start: qt.QFileDialog.getExistingDirectory(None, "Workspace folder", start), guard)
        form.addRow("Workspace:", row)
        self.foundationCombo = qt.QComboBox()
        for source in FOUNDATION_SOURCES:
            self.foundationCombo.addItem(source)
        frow, self.foundationEdit = browse_row("VoCo .pt/.pth, MONAI model_swinvit.pt or .safetensors",
                                               lambda start: _file_name(qt.QFileDialog.getOpenFileName(None, "Foundation model", start)),
                                               guard)
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

        guard.on_click(self.createButton, "Could not create the workspace.", self.on_create)
        guard.on_click(self.openButton, "Could not open the workspace.", self.on_open)
        for signal in (self.foundationCombo.currentIndexChanged, self.pathEdit.textChanged, self.foundationEdit.textChanged):
            guard.connect(signal, "Could not update the Workspace panel.", lambda *_: self._update_enabled())
        guard.connect(self.c.workspaceChanged, "Could not show the workspace.", lambda *_: self.refresh())
        guard.connect(self.c.dataChanged, "Could not show the workspace.", lambda *_: self.refresh())
        guard.connect(self.c.busyChanged, "Could not update the Workspace panel.", lambda *_: self._update_enabled())
        self._update_enabled()

    def _update_enabled(self) -> None:
        """Create/Open are enabled only with a folder (and a model file when "model file..." is chosen)."""
        use_file = get(self.foundationCombo, "currentIndex") == 1
        self.foundationEdit.setEnabled(use_file)
        folder = bool(get(self.pathEdit, "text").strip())
        model = not use_file or bool(get(self.foundationEdit, "text").strip())
        self.createButton.setEnabled(not self.c.busy and folder and model)
        self.openButton.setEnabled(not self.c.busy and folder)
        self.createButton.setToolTip("" if folder and model else
                                     "choose a workspace folder" + ("" if model else " and the foundation model file"))

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
            set_status(self.statusLabel, "choose a workspace folder first", error=True)
            return
        if get(self.foundationCombo, "currentIndex") == 1 and not get(self.foundationEdit, "text").strip():
            set_status(self.statusLabel, "choose the foundation model file, or the demo model", error=True)
            return
        if wf.is_workspace(folder):
            self.on_open()
            return

        def done(code, out, err):
            if code == 0:
                set_status(self.statusLabel, out.strip().splitlines()[-1] if out.strip() else "workspace created")
                self.c.open_workspace(folder)
            else:
                set_status(self.statusLabel, wf.last_line(err) or f"init failed (exit {code})", error=True)

        if self.c.run_command(self.init_arguments(folder), done):
            set_status(self.statusLabel, "creating the workspace (loading the foundation model)...")
        else:
            set_status(self.statusLabel, "not created: MedSeqFT's Python packages are not ready (see the message)", error=True)

    def on_open(self) -> None:
        folder = get(self.pathEdit, "text").strip()
        if not folder:
            set_status(self.statusLabel, "choose a workspace folder first", error=True)
        elif not wf.is_workspace(folder):
            set_status(self.statusLabel, f"{folder}: no workspace.json here; create the workspace first", error=True)
        elif self.c.open_workspace(folder):
            set_status(self.statusLabel, f"opened {folder}")

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
        branches = wf.adapter_branches(ws)
        self.sequenceLabel.setText(" -> ".join(wf.model_sequence(ws)) + f"   [{arch}; foundation: {Path(str(source)).name}]"
                                   + (f"\nadapter tasks (frozen base + own modules): {', '.join(branches)}" if branches else ""))


def _file_name(result) -> str:
    """PySide6 returns ``(name, filter)``, PythonQt just the name."""
    return result[0] if isinstance(result, tuple) else result
