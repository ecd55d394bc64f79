"""The ``medseqft`` command line: one small module per subcommand, each a thin front end.

Every subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args, reporter) -> int``; modules with ``JOB = True`` run as a background-capable job
(``--detach``, ``events.jsonl``, cancel; see ``MedSeqFTLib.jobs``). Subcommand modules are
light to import: heavy libraries are imported inside ``run``.

Exit codes: 0 ok, 1 internal error, 2 bad input (one line on stderr), 3 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import EXIT_CANCELLED, EXIT_INPUT, EXIT_INTERNAL, Cancelled, InputError

__all__ = ["main", "build_parser", "COMMANDS"]

# Explicit, ordered table (no package scanning): name -> module.
COMMANDS = {
    "demo": "demo",
    "phantoms": "phantoms",
    "pretrain": "pretrain",
    "init": "init",
    "add-task": "add_task",
    "plan": "plan",
    "status": "status",
    "select": "select",
    "refine": "refine",
    "predict": "predict",
    "evaluate": "evaluate",
    "report": "report",
    "cancel": "cancel",
    "benchmark": "benchmark",
}


def _load(module: str):
    return importlib.import_module(f"{__name__}.{module}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors are bad input too: exit 2, one line
        self.print_usage(sys.stderr)
        sys.stderr.write(f"medseqft: error: {message}\n")
        raise SystemExit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="medseqft",
        description="Sequential fine-tuning of 3D segmentation foundation models without forgetting "
        "(MDS buffer selection + K&G RFT with LoRA distillation and merge).",
    )
    parser.add_argument("--version", action="version", version=f"medseqft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = _load(module_name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        if getattr(module, "JOB", False):
            p.add_argument("--detach", action="store_true", help="start as a background job, print its id and return at once")
            p.add_argument("--job-dir", type=Path, default=None, metavar="DIR",
                           help="folder for this job's events.jsonl and status.json (default: WS/jobs)")
        p.set_defaults(_module=module, _name=name)
    return parser


def _quiet_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning.

    With the default (spinning) policy, torch's CPU threads waste their time slices whenever
    another process wants a core: measured on a 2-core machine with one busy core, a small
    U-Net training step took 2.29 s with 2 threads instead of 0.23 s with this setting. It must
    be set before torch is imported, which the subcommands do lazily; an explicit user
    setting wins.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code instead of calling ``sys.exit``."""
    _quiet_openmp()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    module = args._module
    args._argv = list(argv) if argv is not None else list(sys.argv[1:])
    try:
        from ..retention.distributed import launched_by_torchrun

        if launched_by_torchrun():
            from .torchrun import run_under_torchrun

            return int(run_under_torchrun(args._name, args, module))
        if getattr(module, "JOB", False):
            from ..jobs.runner import execute

            return int(execute(args._name, args, module.run))
        from ..jobs.reporter import ConsoleReporter

        return int(module.run(args, ConsoleReporter()) or 0)
    except InputError as exc:
        sys.stderr.write(f"medseqft {args._name}: error: {exc}\n")
        return EXIT_INPUT
    except Cancelled as exc:
        sys.stderr.write(f"medseqft {args._name}: cancelled: {exc}\n")
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        sys.stderr.write(f"medseqft {args._name}: interrupted; rerun with --resume to continue\n")
        return EXIT_CANCELLED
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"medseqft {args._name}: internal error (exit {EXIT_INTERNAL}); please report it with the trace above\n")
        return EXIT_INTERNAL
