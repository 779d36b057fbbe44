"""Latent flow matching: the solvers' accuracy, the flow-matching loss, training, the
autoencoder's gate, model files and the O2 export."""

from __future__ import annotations

import math
import typing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from baseline_helpers import make_batch, one_torch_thread, raw_particles, sae_model_file

from calosim.data.transforms import ParticleStandardiser
from calosim.errors import CalosimError
from calosim.flow import SOLVERS, EulerSolver, HeunSolver, build_solver
from calosim.models import LearnedSimulator, build_model
from calosim.models.latent_flow import LatentFlow, LatentFlowConfig
from calosim.training.checkpoint import load_simulator, save_model_file

TINY_SAE = {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [16, 32],
            "noise_hidden": [16], "sinkhorn_blur": 0.1}
TINY_FLOW = {"width": 32, "depth": 2, "embedding_dim": 16, "sampling_steps": 3}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture
def sae_file(tmp_path: Path) -> Path:
    return sae_model_file(tmp_path / "sae" / "model.pt", {**TINY_SAE, "decoder": "channel_totals"})


def flow_model(sae_file: Path, **values) -> LatentFlow:
    torch.manual_seed(1)
    return build_model("latent_flow", {**TINY_FLOW, "autoencoder": str(sae_file), **values})


@pytest.mark.parametrize(("solver", "order"), [(EulerSolver, 1), (HeunSolver, 2)])
def test_solvers_converge_at_their_order(solver, order) -> None:
    """dz/dt = z from z(1) = 1 gives z(0) = 1/e; halving the step divides the error by
    2**order. A constant velocity (a straight path) is exact in one step."""
    start = torch.ones(1, dtype=torch.float64)
    errors = [abs(float(solver(steps).sample(lambda z, t: z, start)) - math.exp(-1))
              for steps in (8, 16)]
    assert errors[0] / errors[1] == pytest.approx(2**order, rel=0.1)
    straight = solver(1).sample(lambda z, t: torch.full_like(z, 3.0), start)
    assert float(straight) == pytest.approx(-2.0)
    assert solver(5).evaluations == 5 * order - (order - 1)  # Heun: the last step is Euler's


def test_unknown_solver_and_bad_steps_are_refused(sae_file: Path) -> None:
    with pytest.raises(ValueError, match="unknown solver"):
        build_solver("rk45", 4)
    assert typing.get_args(typing.get_type_hints(LatentFlowConfig)["solver"]) == tuple(SOLVERS)
    for values, needle in [({"solver": "rk45"}, "expected one of 'euler', 'heun'"),
                           ({"sampling_steps": 0}, "sampling_steps must be at least 1")]:
        with pytest.raises(CalosimError, match=needle):
            flow_model(sae_file, **values)


def test_loss_is_the_velocity_regression(sae_file: Path, synthetic_batch) -> None:
    """With the output layer zero (its initialisation), the prediction is 0 and the loss is
    E|eps - z_0|^2 over the batch's noise and latents."""
    images, conditions = synthetic_batch
    model = flow_model(sae_file, use_gate=False)
    batch = make_batch(images, conditions, seed=3)
    loss = float(model.training_losses(batch)["loss"].detach())
    replay = make_batch(images, conditions, seed=3)
    z0, _ = model.training_latents(replay)
    replay.rand(len(z0))  # the times, drawn first
    noise = replay.randn(len(z0), model.data_dim)
    assert loss == pytest.approx(float(((noise - z0) ** 2).mean()), rel=1e-5)


def test_training_lowers_the_loss_and_generation_is_deterministic(sae_file: Path,
                                                                   synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = flow_model(sae_file)
    (optimiser,) = model.configure_optimisers(3e-3, 0.0)
    losses = [model.training_step(make_batch(images, conditions, seed), [optimiser])["loss"]
              for seed in range(150)]
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20])
    model.eval()
    noise = torch.randn(16, *model.noise_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = model.generate_counts(noise, conditions[:16])
        again = model.generate_counts(noise, conditions[:16])
    assert first.shape == (16, 44, 44) and torch.equal(first, again)
    assert torch.isfinite(first).all() and (first >= 0).all()


def test_the_autoencoders_gate_decides_empty_responses(sae_file: Path, synthetic_batch) -> None:
    _, conditions = synthetic_batch
    model = flow_model(sae_file).eval()
    assert model.gated and model.noise_shape == (4 + 5 + 1,)
    assert model.response_noise_shape == (9,)
    noise = torch.randn(64, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        empty = model.empty_probability(conditions)
        noise[:, -1] = 10.0  # the gate's uniform is 1: every response kept
        kept = model.generate_counts(noise, conditions)
        noise[:, -1] = -10.0  # ... is 0: emptied wherever P(empty) > 0
        emptied = model.generate_counts(noise, conditions)
    dark = empty > 0
    assert dark.any() and kept[dark].sum() > 0 and emptied[dark].sum() == 0
    assert torch.equal(emptied[~dark], kept[~dark])


def test_set_sampling_and_the_model_file(sae_file: Path, tmp_path: Path) -> None:
    model = flow_model(sae_file)
    with torch.no_grad():  # a velocity that bends the paths (a straight one is exact)
        model.denoiser.output[-1].weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(4))
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(200)),
                                 model_name="latent_flow", round_counts=False)
    particles = raw_particles(200, seed=1)
    three_heun = simulator.simulate(particles, seed=5)
    model.set_sampling(solver="euler", sampling_steps=6)
    assert model.solver.evaluations == 6
    six_euler = simulator.simulate(particles, seed=5)
    assert not np.array_equal(three_heun, six_euler)
    with pytest.raises(ValueError, match="not a sampling setting"):
        model.set_sampling(width=3)
    loaded = load_simulator(save_model_file(tmp_path / "flow.pt", simulator, seed=7))
    assert loaded.model.config.solver == "euler"
    np.testing.assert_array_equal(loaded.simulate(particles, seed=5), six_euler)


def test_a_latent_flow_exports_for_o2(sae_file: Path, tmp_path: Path) -> None:
    from calosim.production.o2 import O2Runtime, export_o2

    model = flow_model(sae_file)
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(200)),
                                 model_name="latent_flow", rounding="stochastic")
    result = export_o2(simulator, tmp_path / "o2")
    assert result.decision == "sample" and result.max_abs_difference < 1e-4
    assert result.manifest["generator"]["noise_drawn_in_graph"] == 0
    responses = O2Runtime(tmp_path / "o2").simulate(raw_particles(50, seed=2), seed=1)
    assert responses.shape == (50, 44, 44) and np.all(responses == np.round(responses))
