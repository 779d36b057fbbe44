"""One set of input checks for every simulator: values nothing can simulate are always
refused, physically implausible rows unless the user allows them, each with one line that
names the source and the first bad row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calosim.data.formats import iter_particle_chunks
from calosim.data.particle_checks import ENERGY_MAX_GEV, VERTEX_MAX_CM, check_ranges
from calosim.data.schema import as_particle_array
from calosim.data.transforms import ParticleStandardiser
from calosim.errors import CalosimError, DataFormatError
from calosim.models import LearnedSimulator
from calosim.models.sinkhorn_ae import SinkhornAEConfig, SinkhornAutoencoder
from calosim.simulators.gun import ParticleGun, aimed_particles
from calosim.simulators.montecarlo import MonteCarloSimulator

NEUTRON = 2112


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_every_gun_particle_is_in_range() -> None:
    for seed in range(3):
        check_ranges(ParticleGun().sample(20_000, seed).particles)


def _neutrons(n: int = 4) -> np.ndarray:
    return aimed_particles(NEUTRON, 500.0, n).copy()


@pytest.mark.parametrize(("column", "value", "mentions"), [
    (0, -5.0, "Energy -5"),
    (0, 0.0, "Energy 0"),
    (0, 2 * ENERGY_MAX_GEV, "Energy 20000"),
    (6, 600.0, "exceeds Energy 500"),
    (7, -1.0, "mass -1"),
    (7, 939.565e3, "mass 939565"),  # given in keV
    (8, 0.5, "charge 0.5"),
    (8, 30.0, "charge 30"),
    (3, 2 * VERTEX_MAX_CM, "vertex"),
])
def test_an_implausible_row_is_named(column: int, value: float, mentions: str) -> None:
    particles = _neutrons()
    particles[2, column] = value
    with pytest.raises(DataFormatError) as error:
        check_ranges(particles, source="run.h5", first_row=1024)
    text = _one_line(error)
    assert text.startswith("run.h5: 1 row(s)")
    assert "first row 1026 (0-based)" in text
    assert mentions in text


def test_rounding_of_energy_and_momentum_is_tolerated() -> None:
    particles = _neutrons()
    particles[:, 6] = particles[:, 0] * (1 + 1e-4)  # |p| a hair above E
    check_ranges(particles)


@pytest.mark.parametrize(("values", "mentions"), [
    (np.ones((2, 9), dtype=np.complex64), "complex"),
    (np.ones((2, 9), dtype=bool), "bool"),
    (np.array([["1"] * 9]), "<U1"),
    (np.full((2, 9), 1e39), "beyond the float32 range"),
    (np.array([[1.0] * 8 + [np.nan]]), "in charge"),
])
def test_values_nothing_can_simulate_are_refused(values: np.ndarray, mentions: str) -> None:
    with pytest.raises(DataFormatError) as error:
        as_particle_array(values, source="list.npz")
    text = _one_line(error)
    assert text.startswith("list.npz")
    assert mentions in text


def _learned_simulator() -> LearnedSimulator:
    torch.manual_seed(0)
    config = SinkhornAEConfig(latent_dim=4, noise_dim=3, encoder_hidden=(16,),
                              decoder_hidden=(16,), noise_hidden=(8,), gate=False)
    model = SinkhornAutoencoder(config)
    gun = ParticleGun().sample(500, 0).particles
    return LearnedSimulator(model, ParticleStandardiser.fit(gun), model_name="e2e_sae")


@pytest.mark.parametrize("make", [MonteCarloSimulator, _learned_simulator],
                         ids=["monte-carlo", "learned"])
def test_every_simulator_refuses_what_the_checks_refuse(make) -> None:
    particles = _neutrons(1100)
    particles[1030, 0] = -3.0
    simulator = make()
    with pytest.raises(DataFormatError, match=r"^zn.csv: .*first row 1030 .*Energy -3"):
        simulator.simulate(particles, seed=1, source="zn.csv")


def test_allowing_out_of_range_rows_simulates_them() -> None:
    particles = _neutrons()
    particles[:, 0] = 1.2 * ENERGY_MAX_GEV
    simulator = _learned_simulator()
    with pytest.raises(DataFormatError):
        simulator.simulate(particles, seed=1)
    responses = simulator.simulate(particles, seed=1, allow_out_of_range=True)
    assert responses.shape == (4, 44, 44)
    simulator.allow_out_of_range = True  # what `load(..., allow_out_of_range=True)` sets
    assert np.array_equal(simulator.simulate(particles, seed=1), responses)


def test_the_monte_carlo_bounds_energy_even_when_out_of_range_is_allowed() -> None:
    particles = _neutrons(2)
    particles[1, 0] = 1e12  # would need about a TiB of fibre crossings
    with pytest.raises(CalosimError, match="particle row 1 .*Monte Carlo's"):
        MonteCarloSimulator().simulate(particles, seed=1, allow_out_of_range=True)


def test_a_model_producing_nan_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    simulator = _learned_simulator()
    simulator.info["model_file"] = "broken.pt"
    monkeypatch.setattr(simulator.model, "generate_counts",
                        lambda noise, conditions: torch.full((len(conditions), 44, 44), np.nan))
    with pytest.raises(CalosimError) as error:
        simulator.simulate(_neutrons(), seed=1, source="zn.h5")
    text = _one_line(error)
    assert "zn.h5: particle row 0" in text
    assert "model e2e_sae (broken.pt) gives NaN" in text


def test_a_spreadsheet_csv_with_byte_order_mark_and_quoted_names_is_read(tmp_path: Path) -> None:
    path = tmp_path / "zn.csv"
    header = ",".join(f'"{name}"' for name in
                      ["Energy", "Vx", "Vy", "Vz", "Px", "Py", "Pz", "mass", "charge"])
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}\n500,0,0,0,0,0,500,939.6,0\n".encode())
    (chunk,) = iter_particle_chunks(path, 1024)
    assert chunk.particles[0, 0] == 500.0


def test_csv_errors_name_the_line_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "zn.csv"
    path.write_text("# made by hand\nEnergy,Vx,Vy,Vz,Px,Py,Pz,mass,charge\n"
                    "500,0,0,0,0,0,500,939.6,0\n\n500,0,0,0,0,0,500,x,0\n")
    with pytest.raises(DataFormatError) as error:
        list(iter_particle_chunks(path, 1024))
    assert "line 5, column 8 (mass)" in _one_line(error)
