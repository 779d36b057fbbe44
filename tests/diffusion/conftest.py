"""Shared settings of the diffusion tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One torch thread: these tests use small tensors, for which a second thread costs
    more in synchronisation than it saves (a lot more on shared, busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
