"""First-use check of the Python packages the library needs inside Slicer.

torch comes from the PyTorch extension (``PyTorchUtilsLogic().installTorch``), which picks the
build that matches the GPU driver; its version must be at least ``TORCH_MINIMUM`` (MONAI 1.6
needs torch >= 2.8). The rest is pip-installed with ``slicer.util.pip_install`` after the user
agrees, with exactly the pins of the project's ``pyproject.toml`` (Testing/slicer checks that
they agree) and with the installed torch pinned on the same command line
(``torch==<installed version>``): pip then keeps the torch that PyTorchUtils chose or fails,
it never swaps in a CPU build from PyPI (TotalSegmentator avoids the same trap with
``--no-deps``; a pin keeps pip resolving the other dependencies). After an install the user is
offered a restart, as SlicerMONAIAuto3DSeg and SlicerTotalSegmentator do.

Versions are read from the installed distributions' metadata (``importlib.metadata``), so the
check is fast and does not import torch into the GUI process.
"""

from __future__ import annotations

import importlib
import re
import subprocess
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["REQUIREMENTS", "TORCH_MINIMUM", "TORCH_REQUIREMENT", "installed_version", "satisfies",
           "unmet_requirements", "ensure_dependencies"]

TORCH_MINIMUM = "2.8"
TORCH_REQUIREMENT = f">={TORCH_MINIMUM}"
#: distribution name -> pip requirement, as pinned in pyproject.toml ``dependencies`` (without torch)
REQUIREMENTS: Dict[str, str] = {
    "monai": "monai>=1.5,<1.7",
    "einops": "einops>=0.7",
    "peft": "peft>=0.21,<0.23",
    "safetensors": "safetensors>=0.4",
    "SimpleITK": "SimpleITK>=2.3",
    "numpy": "numpy>=1.24",
    "scipy": "scipy>=1.10",
    "matplotlib": "matplotlib>=3.7",
    "psutil": "psutil>=5.9",
    "nibabel": "nibabel>=5",
}
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|<|>)\s*([0-9][0-9A-Za-z.+!-]*)\s*$")


def installed_version(distribution: str) -> Optional[str]:
    """The installed version of ``distribution``, or ``None`` when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> Tuple[int, ...]:
    """``"2.8.0+cu126"`` -> ``(2, 8, 0)``: the numeric release part (local tags and pre-release
    suffixes are ignored, which is enough for the ``>=``/``<`` pins used here)."""
    parts = []
    for piece in re.split(r"[.+-]", version.split("+")[0]):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets ``specifier`` (comma-separated ``>=``, ``<``, ``==`` ... clauses).

    Raises:
        ValueError: a clause is not of the form ``<operator><version>``.
    """
    have = _release(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = _CLAUSE.match(clause)
        if not match:
            raise ValueError(f"requirement clause {clause!r}: expected e.g. '>=1.5' or '<1.7'")
        op, want = match.group(1), _release(match.group(2))
        ok = {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want,
              "==": have == want, "!=": have != want}[op]
        if not ok:
            return False
    return True


def _split(requirement: str) -> Tuple[str, str]:
    name = re.match(r"^[A-Za-z0-9_.-]+", requirement).group()
    return name, requirement[len(name):]


def unmet_requirements(version_of: Optional[Callable[[str], Optional[str]]] = None) -> List[Tuple[str, Optional[str]]]:
    """``(requirement, installed version or None)`` for each non-torch requirement not met."""
    version_of = version_of or installed_version
    out = []
    for requirement in REQUIREMENTS.values():
        name, spec = _split(requirement)
        have = version_of(name)
        if have is None or not satisfies(have, spec):
            out.append((requirement, have))
    return out


def ensure_dependencies(ask: Callable[[str], bool], pip_install: Optional[Callable[[str], None]] = None,
                        install_torch: Optional[Callable[[], object]] = None,
                        version_of: Optional[Callable[[str], Optional[str]]] = None,
                        restart: Optional[Callable[[], None]] = None) -> bool:
    """Install what is missing after asking; return ``True`` when everything is available.

    Args:
        ask: shows a yes/no question, returns the answer.
        pip_install: installs a requirement string (Slicer: ``slicer.util.pip_install``).
        install_torch: installs torch (Slicer: the PyTorch extension's ``installTorch``).
        version_of: installed version of a distribution, ``None`` if absent (default
            ``installed_version``).
        restart: restarts the application (Slicer: ``slicer.util.restart``); offered after an install.

    Raises:
        RuntimeError: the user refused; torch is older than ``TORCH_MINIMUM``; an install
            failed (pip's ``CalledProcessError`` included) or did not make the package
            available. The message says what to do by hand.
    """
    version_of = version_of or installed_version
    installed_something = False
    torch = version_of("torch")
    if torch is None:
        if pip_install is None or install_torch is None:
            pip_install, install_torch = _slicer_installers(pip_install, install_torch)
        if install_torch is None:
            raise RuntimeError("PyTorch is missing: install the 'PyTorch' extension from the Extensions Manager, "
                               "then restart Slicer")
        try:  # installTorch asks for confirmation itself (askConfirmation=True)
            done = install_torch()
        except (subprocess.CalledProcessError, OSError) as exc:
            raise RuntimeError(f"installing PyTorch failed ({exc}); see the Python console for the installer's "
                               f"output, then use the PyTorch Utils module with the requirement {TORCH_REQUIREMENT}") from exc
        if not done:
            raise RuntimeError("PyTorch was not installed; MedSeqFT needs it (PyTorch Utils module -> Install)")
        importlib.invalidate_caches()
        torch = version_of("torch")
        installed_something = True
    if torch is not None and not satisfies(torch, TORCH_REQUIREMENT):
        raise RuntimeError(f"PyTorch {torch} is installed but MedSeqFT needs torch {TORCH_REQUIREMENT} (MONAI 1.6): "
                           f"open the PyTorch Utils module, set the version requirement to {TORCH_REQUIREMENT}, "
                           "press Install, then restart Slicer")
    unmet = unmet_requirements(version_of)
    if unmet:
        if pip_install is None:
            pip_install, install_torch = _slicer_installers(pip_install, install_torch)
        wanted = [req for req, _ in unmet]
        lines = [req + (f"  (installed: {have})" if have else "") for req, have in unmet]
        question = ("MedSeqFT needs these Python packages (about 150 MB with their dependencies; "
                    f"your PyTorch {torch or ''} stays as it is):\n  " + "\n  ".join(lines) + "\nInstall them now?")
        by_hand = "slicer.util.pip_install('" + " ".join(wanted) + "')"
        if not ask(question):
            raise RuntimeError("MedSeqFT cannot run without " + ", ".join(wanted)
                               + ". Install them later from the Python console: " + by_hand)
        pin = [f"torch=={torch}"] if torch else []
        try:
            pip_install(" ".join(pin + wanted))
        except (subprocess.CalledProcessError, OSError) as exc:
            code = getattr(exc, "returncode", None)
            raise RuntimeError(f"pip could not install {', '.join(wanted)}"
                               + (f" (exit code {code})" if code is not None else f" ({exc})")
                               + "; pip's messages are in the Python console. Try by hand: " + by_hand) from exc
        importlib.invalidate_caches()
        installed_something = True
        still = unmet_requirements(version_of)
        if still:
            raise RuntimeError("still not installed after pip: " + ", ".join(r for r, _ in still)
                               + "; restart Slicer and try again")
    if installed_something and restart is not None and ask(
            "The Python packages are installed. Restart Slicer now? Modules that were loaded before the "
            "install see the new packages only after a restart (recommended)."):
        restart()
    return True


def _slicer_installers(pip_install, install_torch):
    try:
        import slicer
    except ImportError:
        return pip_install, install_torch
    if pip_install is None:
        pip_install = slicer.util.pip_install
    if install_torch is None:
        def install_torch():
            try:
                import PyTorchUtils
            except ImportError as exc:
                raise RuntimeError("the 'PyTorch' extension is not installed: install it from the Extensions "
                                   "Manager, restart Slicer, then try again") from exc
            return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                                 torchVersionRequirement=TORCH_REQUIREMENT)
    return pip_install, install_torch
