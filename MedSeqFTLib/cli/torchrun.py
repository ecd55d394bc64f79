"""Commands started by ``torchrun``: rank 0 runs the job (events, status, cancel), the others run quietly.

``torchrun --nproc_per_node N -m MedSeqFTLib refine WS [--resume]`` starts N copies of the command.
Only commands that declare ``DISTRIBUTED = True`` (``refine``) may run that way. Rank 0 runs it
as the usual job (``jobs.runner.execute``: one job folder, one ``events.jsonl``, ``status`` and
``cancel`` work on it); the other ranks get a reporter that writes nothing and turns SIGTERM /
SIGINT into a cancel request, which the training loop shares with every rank at the next step
(``retention.distributed.control``). See docs/scale_out.md.
"""

from __future__ import annotations

import os
import signal

from ..errors import InputError
from ..jobs.reporter import NullReporter

__all__ = ["run_under_torchrun"]


class _QuietRank(NullReporter):
    """The reporter of ranks > 0: no output; SIGTERM / SIGINT request a cancel at the next step."""

    def __init__(self) -> None:
        super().__init__()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_cancel())


def run_under_torchrun(name: str, args, module) -> int:
    """Run ``module`` on this rank; returns its exit code.

    Raises:
        InputError: the command cannot run under torchrun, ``--detach`` was given, or the
            process group / device cannot be set up (``distributed.init_from_env``).
    """
    from ..retention import distributed as ddp

    if not getattr(module, "DISTRIBUTED", False):
        raise InputError("torchrun", f"'{name}' does not run under torchrun; only 'refine' does (run '{name}' as one process)")
    if getattr(args, "detach", False):
        raise InputError("--detach", "cannot detach a torchrun process; start torchrun itself in the background "
                                     "(nohup, a cluster job) and follow it with 'medseqft status'")
    ddp.init_from_env(getattr(args, "device", "auto"))
    try:
        if int(os.environ.get("RANK", "0")) == 0:
            from ..jobs.runner import execute

            return int(execute(name, args, module.run))
        return int(module.run(args, _QuietRank()) or 0)
    finally:
        ddp.shutdown()
