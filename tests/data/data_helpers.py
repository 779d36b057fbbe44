"""Small random datasets and assertions shared by the data-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calosim.data import ZDCDataset
from calosim.errors import DataFormatError

N_ROWS = 37


def random_dataset(n: int = N_ROWS, seed: int = 1, *, with_pdg: bool = True) -> ZDCDataset:
    """Plausible-looking rows: positive energies, sparse integer counts, a few empty images."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(1.0, 7000.0, n)
    particles = np.column_stack([
        energy,
        rng.normal(0, 4e-6, n), rng.normal(0, 4e-6, n), rng.normal(0, 0.02, n),
        rng.normal(0, 0.2, n), rng.normal(0, 0.2, n), energy * rng.choice([-1.0, 1.0], n),
        rng.choice([0.0, 939.6, 938.3], n), rng.choice([0.0, 1.0], n),
    ])
    responses = rng.poisson(rng.uniform(0, 0.5, (n, 1, 1)), size=(n, 44, 44)).astype(np.float32)
    responses[::7] = 0  # empty responses, as in the real data
    pdg = rng.choice([22, 2112, 2212, 3122, -211], n) if with_pdg else None
    return ZDCDataset(responses, particles, pdg, {"seed": 11, "simulator": "random"})


def assert_same_rows(actual: ZDCDataset, expected: ZDCDataset) -> None:
    """Identical particles, PDG ids and responses (values, not dtypes)."""
    np.testing.assert_array_equal(actual.particles, expected.particles)
    if expected.pdg is None:
        assert actual.pdg is None
    else:
        np.testing.assert_array_equal(actual.pdg, expected.pdg)
    if expected.responses is None:
        assert actual.responses is None
    else:
        assert actual.responses is not None
        np.testing.assert_array_equal(actual.responses, expected.responses)


def expect_data_error(path: Path | str, call: Callable[[], Any], *, mentions: str = "") -> str:
    """``call()`` must raise a one-line DataFormatError naming ``path`` (and ``mentions``)."""
    with pytest.raises(DataFormatError) as caught:
        call()
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    assert mentions in message
    return message
