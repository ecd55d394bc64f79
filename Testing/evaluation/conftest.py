import sys
from pathlib import Path

# the tiny on-disk workspace builder lives next to the inference tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # the CI machine has 2 shared cores: tiny 3D convolutions run faster without thread contention
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
