"""Headless runs through the library CLI (used by ``MedSeqFTLogic`` and Resources/batch/).

Each step is one ``medseqft`` command run to its end in the foreground (no ``--detach``):
its progress goes to the console, its exit code decides whether the sequence goes on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional, Sequence

from .jobprocess import default_cli_prefix, library_env

__all__ = ["run_command", "sequence_steps", "run_sequence"]


def run_command(args: Sequence[object], cli_prefix: Optional[Sequence[str]] = None, env: Optional[dict] = None) -> int:
    """Run ``medseqft <args>`` in the foreground and return its exit code (0/1/2/3)."""
    prefix = list(cli_prefix) if cli_prefix else default_cli_prefix()
    return subprocess.run(prefix + [str(a) for a in args], env=env if env is not None else library_env()).returncode


def sequence_steps(workspace: str | Path, datasets: Sequence[str | Path], foundation: str = "demo",
                   preset: Optional[str] = "cpu_demo", device: str = "auto", init_args: Sequence[str] = ()) -> List[list]:
    """The commands of a whole sequence: init (if new), add-task per dataset, select, refine, evaluate."""
    ws = Path(workspace)
    steps = []
    if not (ws / "workspace.json").is_file():
        steps.append(["init", ws, "--foundation", foundation] + (["--preset", preset] if preset else []) + list(init_args))
    steps += [["add-task", ws, d] for d in datasets]
    steps += [["select", ws], ["refine", ws, "--device", device], ["evaluate", ws]]
    return steps


def run_sequence(workspace, datasets, foundation="demo", preset="cpu_demo", device="auto", init_args=(),
                 cli_prefix=None, env=None) -> int:
    """Run every step of ``sequence_steps``; stop at and return the first non-zero exit code."""
    for step in sequence_steps(workspace, datasets, foundation, preset, device, init_args):
        code = run_command(step, cli_prefix, env)
        if code != 0:
            return code
    return 0
