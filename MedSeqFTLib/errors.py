"""Exceptions that the command line turns into exit codes.

``InputError`` (exit 2) is for anything the user supplied that is wrong: a file, a folder,
an option. Its message is one line that names the file (or option) and the problem.
``Cancelled`` (exit 3) is raised when a job was asked to stop and stopped cleanly.
Everything else is an internal error (exit 1).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MedSeqFTError", "InputError", "Cancelled", "EXIT_OK", "EXIT_INTERNAL", "EXIT_INPUT", "EXIT_CANCELLED"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_CANCELLED = 3


class MedSeqFTError(Exception):
    """Base class of the project's own errors."""

    exit_code = EXIT_INTERNAL


class InputError(MedSeqFTError, ValueError):
    """Bad user input. ``InputError(path, "problem")`` renders as ``"<path>: problem"``."""

    exit_code = EXIT_INPUT

    def __init__(self, where: str | Path | None, problem: str | None = None):
        if problem is None:
            message = str(where)
        else:
            message = f"{where}: {problem}"
        # one line, always: the CLI prints it as is
        super().__init__(" ".join(message.split()))


class Cancelled(MedSeqFTError):
    """The job was cancelled (SIGTERM or a cancel request) and stopped at a safe point."""

    exit_code = EXIT_CANCELLED
