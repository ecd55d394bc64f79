"""First-use dependency check: versions, pins, asking, refusing, installing, failing, restarting."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from MedSeqFTUI.dependencies import REQUIREMENTS, TORCH_MINIMUM, ensure_dependencies, satisfies, unmet_requirements

REPO = Path(__file__).resolve().parents[2]
GOOD = {"torch": "2.9.1+cu128", "monai": "1.6.1", "einops": "0.8.1", "peft": "0.21.2", "safetensors": "0.6.2",
        "SimpleITK": "2.5.2", "numpy": "2.3.0", "scipy": "1.16.0", "matplotlib": "3.10.0", "psutil": "7.0.0",
        "nibabel": "5.3.2"}


class FakeEnv:
    """Installed distributions that the installers really change (``version_of`` reads them)."""

    def __init__(self, **versions):
        self.versions = dict(versions)
        self.pip_calls = []
        self.torch_calls = 0
        self.restarts = 0
        self.questions = []
        self.answers = []

    def version_of(self, name):
        return self.versions.get(name)

    def ask(self, question):
        self.questions.append(question)
        return self.answers.pop(0) if self.answers else True

    def pip_install(self, requirements):
        self.pip_calls.append(requirements)
        for req in requirements.split():
            name = re.match(r"[A-Za-z0-9_.-]+", req).group()
            if name != "torch":
                self.versions[name] = GOOD[name]

    def install_torch(self):
        self.torch_calls += 1
        self.versions["torch"] = GOOD["torch"]
        return True

    def restart(self):
        self.restarts += 1

    def ensure(self):
        return ensure_dependencies(ask=self.ask, pip_install=self.pip_install, install_torch=self.install_torch,
                                   version_of=self.version_of, restart=self.restart)


def pyproject_dependencies():
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return {re.match(r"[A-Za-z0-9_.-]+", d).group(): d.replace(" ", "") for d in deps}


def test_requirements_are_pyprojects_pins():
    """Finding: the in-Slicer strings (monai>=1.5, peft>=0.17) differed from pyproject's pins."""
    pins = pyproject_dependencies()
    assert pins.pop("torch") == f"torch>={TORCH_MINIMUM}"
    assert {name: req for name, req in REQUIREMENTS.items()} == pins


def test_version_specifiers():
    assert satisfies("1.6.1", ">=1.5,<1.7") and not satisfies("1.7.0", ">=1.5,<1.7") and not satisfies("1.4.9", ">=1.5")
    assert satisfies("2.8.0+cu126", ">=2.8") and satisfies("2.10.0", ">=2.8") and not satisfies("2.7.1+cpu", ">=2.8")
    assert satisfies("5.0", ">=5") and satisfies("0.21.0", "==0.21")
    with pytest.raises(ValueError, match="expected e.g."):
        satisfies("1.0", "~=1.0")


def test_nothing_missing_asks_nothing():
    env = FakeEnv(**GOOD)
    assert env.ensure()
    assert env.pip_calls == [] and env.torch_calls == 0 and env.questions == [] and env.restarts == 0


def test_installs_torch_via_pytorch_extension_then_the_rest_with_torch_pinned():
    env = FakeEnv(SimpleITK="2.5.2", numpy="2.3.0", scipy="1.16.0", matplotlib="3.10.0", psutil="7.0.0", nibabel="5.3.2")
    assert unmet_requirements(env.version_of) == [(REQUIREMENTS[n], None) for n in ("monai", "einops", "peft", "safetensors")]
    assert env.ensure()
    assert env.torch_calls == 1
    assert env.pip_calls == [f"torch=={GOOD['torch']} monai>=1.5,<1.7 einops>=0.7 peft>=0.21,<0.23 safetensors>=0.4"]
    assert "monai>=1.5,<1.7" in env.questions[0] and "PyTorch 2.9.1+cu128 stays as it is" in env.questions[0]
    assert "Restart Slicer now?" in env.questions[-1] and env.restarts == 1


def test_a_too_old_package_is_upgraded():
    env = FakeEnv(**dict(GOOD, monai="1.4.0"))
    assert env.ensure()
    assert "monai>=1.5,<1.7  (installed: 1.4.0)" in env.questions[0]
    assert env.pip_calls == [f"torch=={GOOD['torch']} monai>=1.5,<1.7"]


def test_old_torch_is_refused_with_advice():
    """Finding: the installed torch version was never checked."""
    env = FakeEnv(**dict(GOOD, torch="2.4.1+cu121", monai=None))
    with pytest.raises(RuntimeError, match=r"PyTorch 2\.4\.1\+cu121 is installed but MedSeqFT needs torch >=2\.8.*PyTorch Utils"):
        env.ensure()
    assert env.pip_calls == [] and env.torch_calls == 0


def test_failed_pip_becomes_a_clear_error():
    """Finding: pip's CalledProcessError was not caught (only RuntimeError was)."""
    env = FakeEnv(**dict(GOOD, peft=None))

    def failing_pip(requirements):
        raise subprocess.CalledProcessError(1, [sys.executable, "-m", "pip", "install", requirements])

    env.pip_install = failing_pip
    with pytest.raises(RuntimeError, match=r"pip could not install peft>=0\.21,<0\.23 \(exit code 1\).*slicer\.util\.pip_install"):
        env.ensure()
    assert env.restarts == 0


def test_failed_torch_install_becomes_a_clear_error():
    env = FakeEnv(**dict(GOOD, torch=None))

    def failing():
        raise subprocess.CalledProcessError(2, ["pip", "install", "torch"])

    env.install_torch = failing
    with pytest.raises(RuntimeError, match="installing PyTorch failed.*PyTorch Utils module with the requirement >=2.8"):
        env.ensure()


def test_refusals_give_a_clear_message_and_install_nothing():
    env = FakeEnv(**dict(GOOD, einops=None))
    env.answers = [False]
    with pytest.raises(RuntimeError, match="cannot run without einops>=0.7.*slicer.util.pip_install"):
        env.ensure()
    assert env.pip_calls == []
    env = FakeEnv(**dict(GOOD, torch=None))
    env.install_torch = lambda: False
    with pytest.raises(RuntimeError, match="PyTorch was not installed"):
        env.ensure()


def test_restart_can_be_declined():
    env = FakeEnv(**dict(GOOD, einops=None))
    env.answers = [True, False]
    assert env.ensure() and env.restarts == 0 and len(env.questions) == 2
