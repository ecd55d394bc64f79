"""Options shared by several subcommands (one definition, one help text)."""

from __future__ import annotations

import argparse

__all__ = ["add_device_argument"]


def add_device_argument(p: argparse.ArgumentParser, default: str = "auto", purpose: str = "") -> None:
    """``--device``: auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps (see ``MedSeqFTLib.devices``)."""
    what = f" {purpose}" if purpose else ""
    p.add_argument("--device", default=default,
                   help=f"device{what}: auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps (default {default})")
