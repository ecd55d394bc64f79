"""First-use dependency check: what is missing, asking, refusing, installing."""

import pytest

from MedSeqFTUI.dependencies import REQUIREMENTS, ensure_dependencies, missing_packages


class FakeEnv:
    """A package set that the installers really change (find_spec reads it)."""

    def __init__(self, present):
        self.present = set(present)
        self.pip_calls = []
        self.torch_calls = 0

    def find_spec(self, name):
        return object() if name in self.present else None

    def pip_install(self, req):
        self.pip_calls.append(req)
        by_req = {v: k for k, v in REQUIREMENTS.items()}
        self.present.update(by_req[r] for r in req.split())

    def install_torch(self):
        self.torch_calls += 1
        self.present.add("torch")
        return True


def test_nothing_missing_asks_nothing():
    env = FakeEnv(["torch", *REQUIREMENTS])
    assert ensure_dependencies(ask=lambda q: pytest.fail("asked"), pip_install=env.pip_install,
                               install_torch=env.install_torch, find_spec=env.find_spec)
    assert env.pip_calls == [] and env.torch_calls == 0


def test_installs_torch_via_pytorch_extension_and_the_rest_via_pip():
    env = FakeEnv(["SimpleITK"])
    assert missing_packages(env.find_spec) == ["torch", "monai", "peft", "einops", "safetensors"]
    questions = []
    assert ensure_dependencies(ask=lambda q: questions.append(q) or True, pip_install=env.pip_install,
                               install_torch=env.install_torch, find_spec=env.find_spec)
    assert env.torch_calls == 1
    assert env.pip_calls == ["monai>=1.5 peft>=0.17 einops safetensors"]
    assert "monai>=1.5" in questions[0]


def test_refusal_gives_a_clear_message_and_installs_nothing():
    env = FakeEnv(["torch"])
    with pytest.raises(RuntimeError, match="cannot run without .*slicer.util.pip_install"):
        ensure_dependencies(ask=lambda q: False, pip_install=env.pip_install, install_torch=env.install_torch,
                            find_spec=env.find_spec)
    assert env.pip_calls == []


def test_torch_refused():
    env = FakeEnv(list(REQUIREMENTS))
    with pytest.raises(RuntimeError, match="PyTorch was not installed"):
        ensure_dependencies(ask=lambda q: True, pip_install=env.pip_install, install_torch=lambda: False,
                            find_spec=env.find_spec)
