"""Shared fixtures of the simulator tests."""

from __future__ import annotations

import pytest

from calosim.simulators.montecarlo import MonteCarloSimulator


@pytest.fixture(scope="session")
def simulator() -> MonteCarloSimulator:
    return MonteCarloSimulator()
