"""Runs a long command in the foreground (the background job machinery builds on this)."""

from __future__ import annotations

from .reporter import ConsoleReporter


def execute(name, args, run):
    if getattr(args, "detach", False):
        from ..errors import InputError

        raise InputError("--detach", "background jobs are not available in this build")
    return run(args, ConsoleReporter())
