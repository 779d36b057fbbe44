"""Fixtures of the data-layer tests (helpers live in data_helpers.py)."""

import pytest
from data_helpers import random_dataset

from calosim.data import ZDCDataset


@pytest.fixture
def dataset() -> ZDCDataset:
    """37 random rows with PDG ids, some empty responses, and seed/simulator attributes."""
    return random_dataset()
