"""Model tests run single-threaded: on a shared 2-core machine, 2 intra-op threads competing
with other processes made tiny convolutions ~10x slower. The previous setting is restored."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
