"""Fixtures of the continual tests: the toy dataset and one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from continual_helpers import toy_dataset

from calosim.data.dataset import ZDCDataset


@pytest.fixture(scope="session")
def toy() -> ZDCDataset:
    return toy_dataset(400, seed=4)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from more threads; on a shared machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
