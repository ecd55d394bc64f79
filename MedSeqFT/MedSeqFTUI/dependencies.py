"""First-use check of the Python packages the library needs inside Slicer.

torch comes from the PyTorch extension (``PyTorchUtilsLogic().installTorch``), which picks
the right CUDA build; the rest is pip-installed with ``slicer.util.pip_install`` after the
user agrees. Nothing is imported here except through ``importlib.util.find_spec``, so the
check is fast and does not load torch into the GUI process.
"""

from __future__ import annotations

import importlib.util
from typing import Callable, Dict, List, Optional

__all__ = ["REQUIREMENTS", "TORCH_REQUIREMENT", "missing_packages", "ensure_dependencies"]

TORCH_REQUIREMENT = ">=2.8"
#: import name -> pip requirement (MONAI 1.6 needs torch >= 2.8 and Python >= 3.10)
REQUIREMENTS: Dict[str, str] = {
    "monai": "monai>=1.5",
    "peft": "peft>=0.17",
    "einops": "einops",
    "safetensors": "safetensors",
    "SimpleITK": "SimpleITK",
}


def missing_packages(find_spec: Callable[[str], object] = importlib.util.find_spec) -> List[str]:
    """Import names (``"torch"`` first) that are not installed."""
    names = ["torch"] + list(REQUIREMENTS)
    return [n for n in names if find_spec(n) is None]


def ensure_dependencies(ask: Callable[[str], bool], pip_install: Optional[Callable[[str], None]] = None,
                        install_torch: Optional[Callable[[], object]] = None,
                        find_spec: Callable[[str], object] = importlib.util.find_spec) -> bool:
    """Install what is missing after asking; return ``True`` when everything is available.

    Args:
        ask: shows a yes/no question, returns the answer.
        pip_install: installs a requirement string (Slicer: ``slicer.util.pip_install``).
        install_torch: installs torch (Slicer: the PyTorch extension's ``installTorch``).

    Raises:
        RuntimeError: the user refused, or an install did not make the package importable;
            the message says what to install by hand.
    """
    missing = missing_packages(find_spec)
    if not missing:
        return True
    if pip_install is None or install_torch is None:
        pip_install, install_torch = _slicer_installers(pip_install, install_torch)
    if "torch" in missing:
        if install_torch is None:
            raise RuntimeError("PyTorch is missing: install the 'PyTorch' extension from the Extensions Manager, then restart Slicer")
        # installTorch asks for confirmation itself (askConfirmation=True)
        if not install_torch():
            raise RuntimeError("PyTorch was not installed; MedSeqFT needs it (PyTorch Utils module -> Install)")
    others = [REQUIREMENTS[n] for n in missing if n != "torch"]
    if others:
        question = ("MedSeqFT needs these Python packages, about 150 MB with their dependencies:\n  "
                    + "\n  ".join(others) + "\nInstall them now?")
        if not ask(question):
            raise RuntimeError("MedSeqFT cannot run without " + ", ".join(others)
                               + ". Install them later from the Python console: slicer.util.pip_install('"
                               + " ".join(others) + "')")
        pip_install(" ".join(others))
    still = [n for n in missing_packages(find_spec)]
    if still:
        raise RuntimeError(f"still missing after installing: {', '.join(still)}; restart Slicer and try again")
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
            except ImportError:
                return None
            return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT)
    return pip_install, install_torch
