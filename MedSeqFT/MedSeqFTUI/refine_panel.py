"""Refinement panel: device and main hyper-parameters, Start (which becomes Cancel while the
job runs), Resume after a cancel or crash, and the job's progress, stage, task, time left and
log, fed from ``events.jsonl`` by the controller's timer."""

from __future__ import annotations

from .events import format_duration
from .jobprocess import pid_alive, read_status
from .qtcompat import get, qt
from .widgets import hbox, section_layout
from . import workspace_files as wf

__all__ = ["RefinePanel"]

STAGE_NAMES = {"fft": "full fine-tuning (task 1)", "kd_fft": "KD-based fine-tuning", "lora_kd": "LoRA distillation",
               "merge": "merging LoRA", "evaluate": "evaluating", "select": "MDS selection", "predict": "predicting"}
MAX_LOG_LINES = 2000


class RefinePanel:
    def __init__(self, section, controller) -> None:
        self.c = controller
        layout = section_layout(section)
        form = qt.QFormLayout()
        self.deviceCombo = qt.QComboBox()
        for d in ("auto", "cpu", "cuda:0", "cuda:1", "mps"):
            self.deviceCombo.addItem(d)
        form.addRow("Device:", self.deviceCombo)
        self.iterationsSpin = qt.QSpinBox()
        self.iterationsSpin.setRange(0, 1000000)
        self.iterationsSpin.setSpecialValueText("workspace default")
        self.iterationsSpin.setToolTip("fine-tuning iterations per task (paper: 25,000); LoRA distillation gets a fifth. "
                                       "Stored in workspace.json when you press Start")
        form.addRow("Iterations:", self.iterationsSpin)
        self.rankSpin = qt.QSpinBox()
        self.rankSpin.setRange(1, 64)
        self.rankSpin.setValue(2)
        self.rankSpin.setToolTip("LoRA rank r of the distillation stage (paper: 2)")
        form.addRow("LoRA rank:", self.rankSpin)
        self.kSpin = qt.QSpinBox()
        self.kSpin.setRange(0, 10000)
        self.kSpin.setSpecialValueText("auto (20%)")
        self.kSpin.setToolTip("buffer cases per task for tasks without a buffer yet")
        form.addRow("Buffer K:", self.kSpin)
        self.startButton = qt.QPushButton("Start")
        self.resumeButton = qt.QPushButton("Resume")
        form.addRow(hbox(self.startButton, self.resumeButton))
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        form.addRow("Progress:", self.progress)
        self.stageLabel = qt.QLabel("-")
        self.taskLabel = qt.QLabel("-")
        self.etaLabel = qt.QLabel("-")
        form.addRow("Stage:", self.stageLabel)
        form.addRow("Task:", self.taskLabel)
        form.addRow("Time left:", self.etaLabel)
        self.log = qt.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setMinimumHeight(110)
        form.addRow(self.log)
        box = qt.QWidget()
        box.setLayout(form)
        layout.addWidget(box)
        self.startButton.clicked.connect(lambda *_: self.on_start_or_cancel())
        self.resumeButton.clicked.connect(lambda *_: self.on_resume())
        self.c.workspaceChanged.connect(lambda *_: (self.load_hyper_parameters(), self._update_enabled()))
        self.c.busyChanged.connect(lambda *_: self._update_enabled())
        self.c.jobStarted.connect(self.on_job_started)
        self.c.jobEvents.connect(self.on_job_events)
        self.c.jobFinished.connect(self.on_job_finished)
        self._update_enabled()

    # -- state ----------------------------------------------------------------------------
    def _refine_running(self) -> bool:
        return bool(self.c.job and self.c.job.active and self.c.job.command == "refine")

    def can_resume(self) -> bool:
        """A refine job was cancelled or died, or a task was left in ``training``."""
        ws = self.c.workspace
        if ws is None:
            return False
        if any(r["status"] == "training" for r in wf.task_rows(ws)):
            return True
        last = wf.latest_job(ws, "refine")
        if last is None:
            return False
        state = read_status(last).get("state")
        return state in ("cancelled", "failed", "died")

    def _update_enabled(self) -> None:
        running = self._refine_running()
        self.startButton.setText("Cancel" if running else "Start")
        self.startButton.setEnabled(running or (self.c.workspace is not None and not self.c.busy))
        self.resumeButton.setEnabled(not self.c.busy and self.can_resume())

    # -- actions --------------------------------------------------------------------------
    def refine_arguments(self, resume: bool = False) -> list:
        args = ["--device", get(self.deviceCombo, "currentText")]
        return args + (["--resume"] if resume else [])

    def load_hyper_parameters(self) -> None:
        """Show the workspace's settings (the spin boxes start from what the library will use)."""
        hp = wf.hyper_parameters(self.c.workspace) if self.c.workspace else {}
        self.iterationsSpin.setValue(int(hp.get("iterations") or 0))
        self.rankSpin.setValue(int(hp.get("lora_rank") or 2))
        self.kSpin.setValue(int(hp.get("k") or 0))

    def store_hyper_parameters(self) -> None:
        """Write changed settings into workspace.json; the refine CLI reads them from there."""
        wf.write_hyper_parameters(self.c.workspace, iterations=get(self.iterationsSpin, "value") or None,
                                  lora_rank=get(self.rankSpin, "value"), k=get(self.kSpin, "value"))

    def on_start_or_cancel(self) -> None:
        if self._refine_running():
            self.c.cancel_job()
            self.startButton.setEnabled(False)
            self.startButton.setText("Cancelling...")
            return
        self._start(resume=False)

    def _start(self, resume: bool) -> None:
        if self.c.workspace is None:
            return
        lock = wf.read_json_or(self.c.workspace / ".lock", {}) or {}
        if lock.get("pid") and pid_alive(lock.get("pid")):
            self.c.prompts.error(f"the workspace is busy: '{lock.get('command', '?')}' (pid {lock['pid']}) holds its lock")
            return
        try:
            self.store_hyper_parameters()
        except ValueError as exc:
            self.c.prompts.error(str(exc))
            return
        self.c.run_job("refine", self.refine_arguments(resume=resume))

    def on_resume(self) -> None:
        self._start(resume=True)

    # -- job feedback ---------------------------------------------------------------------
    def on_job_started(self, command) -> None:
        if command != "refine":
            return
        self.progress.setValue(0)
        self.log.appendPlainText(f"--- {command} started ---")
        self._update_enabled()

    def on_job_events(self, events, summary) -> None:
        if self.c.job is None or self.c.job.command != "refine":
            return
        for ev in events:
            line = summary.log_line(ev)
            if line:
                self.log.appendPlainText(line)
        self.progress.setValue(int(round(1000 * summary.fraction)))
        self.progress.setFormat(f"{summary.step}/{summary.total}  %p%" if summary.total else "%p%")
        self.stageLabel.setText(STAGE_NAMES.get(summary.stage, summary.stage or "-"))
        self.taskLabel.setText(summary.task or "-")
        self.etaLabel.setText(format_duration(summary.eta_s) + (" (this stage)" if summary.eta_s else ""))

    def on_job_finished(self, state, summary, command) -> None:
        if command != "refine":
            return
        self.log.appendPlainText(f"--- refine {state}: {summary.message or ''} ---")
        self.stageLabel.setText({"done": "finished", "cancelled": "cancelled (Resume continues)",
                                 "failed": "failed (Resume continues)"}.get(state, state))
        if state == "failed" and self.c.job is not None and self.c.job.error:
            self.c.prompts.error(self.c.job.error)
        self._update_enabled()
