"""The strategies that are plug-ins of the one Trainer: any model (a GAN with two
optimisers, the e2e SAE with its refinement phase) learns each task through its own
``training_step``; replay reaches the refits; the noise floors are computed once and then
read from their cache (resuming at a task boundary: test_run.py)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from continual_helpers import tiny_config

from calosim.continual.run import train_continual_from_config
from calosim.models.cgan import ConditionalGAN
from calosim.models.sinkhorn_ae import SinkhornAutoencoder
from calosim.simulators.montecarlo import MonteCarloSimulator

TINY_GAN = {"name": "cgan", "noise_dim": 4, "generator_hidden": [16, 32], "critic": "mlp",
            "critic_hidden": [32], "critic_steps": 2}
TINY_SAE = {"name": "e2e_sae", "latent_dim": 3, "noise_dim": 3, "encoder_hidden": [32],
            "decoder": "channel_totals", "decoder_hidden": [16, 32], "noise_hidden": [16],
            "gate": True, "gate_hidden": [8], "refine_steps": 6, "refine_batch_size": 32,
            "shape_refit_steps": 2, "totals_refit_steps": 2}


def _config(strategy: str, model: dict[str, Any], **changes: Any) -> dict[str, Any]:
    config = tiny_config(strategy, epochs=2)
    config["model"] = dict(model)
    config.update(changes)
    return config


def test_ewc_drives_a_gan_through_its_own_training_step(toy, tmp_path, monkeypatch) -> None:
    steps: list[bool] = []
    original = ConditionalGAN.training_step

    def counted(self, batch, optimisers, grad_clip=None, penalty=None):  # type: ignore[no-untyped-def]
        steps.append(len(optimisers) == 2 and penalty is not None)
        return original(self, batch, optimisers, grad_clip, penalty)

    monkeypatch.setattr(ConditionalGAN, "training_step", counted)
    result = train_continual_from_config(_config("ewc", TINY_GAN), data=toy,
                                         out_dir=tmp_path / "run", progress=False)
    assert steps and all(steps)  # both optimisers, the strategy's penalty passed in
    task_two = [json.loads(line) for line in
                (result.run_dir / "tasks" / "task_2" / "metrics.jsonl").read_text().splitlines()]
    assert all(record["train"]["ewc"] > 0 for record in task_two)  # the penalty is in the loss
    task_one = (result.run_dir / "tasks" / "task_1" / "metrics.jsonl").read_text()
    assert '"ewc"' not in task_one  # nothing to consolidate towards before task 2
    assert np.isfinite(np.asarray(result.metrics["values"]["wasserstein_mean"])).all()


def test_replay_reaches_the_autoencoders_refinement(toy, tmp_path, monkeypatch) -> None:
    sizes: list[tuple[int, int]] = []
    original = SinkhornAutoencoder.refine

    def refine(self, batches, generator, progress=False, **options):  # type: ignore[no-untyped-def]
        batches = list(batches)
        sizes.append((len(batches), sum(len(b.images) for b in batches)))
        return original(self, batches, generator, progress, **options)

    monkeypatch.setattr(SinkhornAutoencoder, "refine", refine)
    config = _config("generative_replay", TINY_SAE, rounding="stochastic")
    config["continual"]["options"] = {"replay_ratio": 1.0}
    result = train_continual_from_config(config, data=toy, out_dir=tmp_path / "run",
                                         progress=False)
    n_train = [task["n_train"] for task in result.metrics["scenario"]]
    assert len(sizes) == 2
    assert sizes[0][1] == n_train[0]  # task 1: its own rows
    # task 2: its own rows, each batch joined by as many replayed rows of task 1
    assert sizes[1][1] == pytest.approx(2 * n_train[1], abs=sizes[1][0])
    assert (result.run_dir / "tasks" / "task_2" / "checkpoints" / "refined.pt").is_file()


def test_floors_are_computed_once_and_read_back(tmp_path, monkeypatch) -> None:
    from calosim.data.dataset import ZDCDataset

    monkeypatch.setenv("CALOSIM_CACHE", str(tmp_path / "cache"))
    mc = MonteCarloSimulator()
    particles = np.zeros((300, 9), dtype=np.float32)
    rng = np.random.default_rng(0)
    particles[:, 0] = rng.uniform(200, 2000, 300)
    particles[:, 6] = particles[:, 0]  # neutrons along the beam: Pz = E
    particles[:, 7] = 939.6
    data = ZDCDataset(responses=mc.simulate(particles, seed=1), particles=particles)
    config = {**tiny_config("naive", epochs=1), "floor": "mc"}
    first = train_continual_from_config(config, data=data, out_dir=tmp_path / "a", progress=False)
    floors = first.metrics["floors"]["wasserstein_mean"]
    assert len(floors) == 2 and all(f > 0 for f in floors)
    ratio = json.loads((first.run_dir / "wasserstein_mean_ratio" / "r_matrix.json").read_text())
    values = np.array(first.metrics["values"]["wasserstein_mean"])
    np.testing.assert_allclose(np.array(ratio["matrix"]), values / np.array(floors)[None, :])

    def no_monte_carlo(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the floor should come from the cache")

    monkeypatch.setattr(MonteCarloSimulator, "simulate", no_monte_carlo)
    second = train_continual_from_config(config, data=data, out_dir=tmp_path / "b",
                                         progress=False)
    assert second.metrics["floors"] == first.metrics["floors"]
