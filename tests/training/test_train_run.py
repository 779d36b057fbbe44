"""train_from_config end to end on a tiny Monte Carlo dataset: files, resume, time budget."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import calosim
from calosim.data.dataset import write_dataset
from calosim.errors import CalosimError
from calosim.training.checkpoint import load_training_state
from calosim.training.run import train_from_config


def train_tiny(config: dict, dataset, out_dir: Path, **options) -> Any:
    """train_from_config on the tiny data, without a progress bar."""
    return train_from_config(config, data=dataset, out_dir=out_dir, progress=False, **options)


def test_run_produces_a_loadable_model_and_its_records(tmp_path, tiny_dataset, tiny_run_config):
    result = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run")
    run = result.run_dir
    for name in ("config.yaml", "split.npz", "train.log", "metrics.jsonl", "metrics.json",
                 "model.pt", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert result.model_path == run / "model.pt"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert all(record["val"]["w1"] > 0 and record["val"]["mae"] > 0 for record in history)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["seed"] == 5 and saved["model"]["name"] == "e2e_sae"
    assert saved["model"]["latent_dim"] == 4 and saved["training"]["lr_decay"] == 1.0
    split = np.load(run / "split.npz")
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == len(tiny_dataset)
    assert result.metrics["test"]["n"] == 50
    assert result.metrics["stop_reason"] == "epochs"
    assert result.metrics["generation_responses_per_second"] > 0

    simulator = calosim.load(result.model_path)
    responses = simulator.simulate(tiny_dataset.particles[:20], seed=1)
    assert responses.shape == (20, 44, 44) and (responses >= 0).all()
    assert simulator.describe()["seed"] == 5


def test_same_seed_same_run(tmp_path, tiny_dataset, tiny_run_config) -> None:
    tiny_run_config["training"]["epochs"] = 1
    first = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "a")
    second = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "b")
    assert first.metrics["test"] == second.metrics["test"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_training_state(path)["model"]


def equal_tensors(first: dict, second: dict, keys: Iterable[str] | None = None) -> bool:
    """Whether the tensors of ``keys`` (default: all of ``first``) are equal in both."""
    return all(torch.equal(first[k], second[k]) for k in (first if keys is None else keys))


def test_resume_continues_to_the_uninterrupted_result(tmp_path, tiny_dataset, tiny_run_config):
    straight = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    train_tiny(tiny_run_config, tiny_dataset, interrupted, overrides=["training.epochs=1"])
    resumed = train_tiny(tiny_run_config, tiny_dataset, interrupted, resume=True)
    final_straight = weights(straight.run_dir / "checkpoints" / "last.pt")
    final_resumed = weights(interrupted / "checkpoints" / "last.pt")
    assert equal_tensors(final_straight, final_resumed)
    assert resumed.metrics["test"] == straight.metrics["test"]
    lines = (interrupted / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resume_after_a_time_budget_stop_mid_epoch(tmp_path, tiny_dataset, tiny_run_config):
    tiny_run_config["training"]["epochs"] = 1
    tiny_run_config["training"]["batch_size"] = 20
    straight = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "straight")
    stopped_dir = tmp_path / "stopped"
    stopped = train_tiny(tiny_run_config, tiny_dataset, stopped_dir, max_minutes=1e-6)
    assert stopped.metrics["stop_reason"] == "time budget"
    state = load_training_state(stopped_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 0 and state["next_batch"] < 20
    kept = calosim.load(stopped.model_path)
    assert kept.simulate(tiny_dataset.particles[:5], seed=0).shape == (5, 44, 44)
    train_tiny(tiny_run_config, tiny_dataset, stopped_dir, resume=True)
    expected = weights(straight.run_dir / "checkpoints" / "last.pt")
    resumed = weights(stopped_dir / "checkpoints" / "last.pt")
    assert equal_tensors(expected, resumed)


def test_refinement_after_the_epochs_is_scored_and_kept_only_if_better(
    tmp_path, tiny_dataset, tiny_run_config
) -> None:
    tiny_run_config["training"]["epochs"] = 2
    tiny_run_config["model"]["refine_steps"] = 30
    result = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run")
    run = result.run_dir
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record.get("phase") for record in history] == [None, None, "refine"]
    refinement = history[-1]
    assert refinement["epoch"] == result.metrics["best_epoch"]
    assert "refinement of epoch" in (run / "train.log").read_text()
    kept = run / "checkpoints" / ("refined.pt" if refinement["best"] else "best.pt")
    assert (run / "model.pt").read_bytes() == kept.read_bytes()
    assert (run / "checkpoints" / "refined.pt").is_file()
    # the refined generator differs; the autoencoder is the best epoch's
    refined = calosim.load(run / "checkpoints" / "refined.pt").model.state_dict()
    best = calosim.load(run / "checkpoints" / "best.pt").model.state_dict()
    assert equal_tensors(refined, best, [k for k in best if not k.startswith("noise")])
    assert not equal_tensors(refined, best, [k for k in best if k.startswith("noise")])
    # resuming the finished run refines the same best model again, to the same result
    resumed = train_tiny(tiny_run_config, tiny_dataset, run, resume=True)
    assert resumed.metrics["test"] == result.metrics["test"]
    again = calosim.load(run / "checkpoints" / "refined.pt").model.state_dict()
    assert equal_tensors(refined, again)


def test_training_data_outside_the_checked_ranges_still_trains(tmp_path, tiny_dataset,
                                                               tiny_run_config):
    """The input checks guard simulate calls on new particles; a run scores its model on
    the particles of its own data, whatever their ranges."""
    from calosim.data.dataset import ZDCDataset

    particles = tiny_dataset.particles.copy()
    particles[::7, 8] = 0.5  # charges no particle has
    odd = ZDCDataset(responses=tiny_dataset.responses, particles=particles)
    tiny_run_config["training"]["epochs"] = 1
    result = train_tiny(tiny_run_config, odd, tmp_path / "run")
    assert result.metrics["test"]["n"] == 50
    with pytest.raises(CalosimError, match="charge 0.5"):
        calosim.load(result.model_path).simulate(particles[:50], seed=1)


def test_the_time_budget_bounds_the_refinement_too(tmp_path, tiny_dataset, tiny_run_config):
    tiny_run_config["training"].update(epochs=1000, patience=None)
    tiny_run_config["model"].update(decoder="channel_totals", refine_steps=10**7,
                                    shape_refit_steps=10**7, totals_refit_steps=10**7)
    result = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run", max_minutes=0.1)
    metrics = result.metrics
    assert metrics["stop_reason"] == "time budget" and metrics["max_minutes"] == 0.1
    assert 0 < metrics["refine_seconds"] < metrics["train_seconds"]
    # the epochs stop at 75 % of the 6 s, the refinement at 100 %; scoring it takes a bit
    assert metrics["train_seconds"] < 6 + 3
    assert metrics["train_seconds"] - metrics["refine_seconds"] < 0.75 * 6 + 2


def test_moving_average_weights_are_validated_kept_and_resumed(
    tmp_path, tiny_dataset, tiny_run_config
) -> None:
    tiny_run_config["training"]["ema_decay"] = 0.9
    tiny_run_config["training"]["epochs"] = 1
    one = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "one")
    state = load_training_state(one.run_dir / "checkpoints" / "last.pt")
    average = {k.removeprefix("module."): v for k, v in state["average"].items()
               if k.startswith("module.")}
    kept = calosim.load(one.model_path).model.state_dict()
    assert equal_tensors(kept, average)
    assert not equal_tensors(kept, state["model"])
    # an interrupted run resumes its average too
    tiny_run_config["training"]["epochs"] = 2
    straight = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "straight")
    train_tiny(tiny_run_config, tiny_dataset, one.run_dir, resume=True)
    expected = load_training_state(straight.run_dir / "checkpoints" / "last.pt")["average"]
    resumed = load_training_state(one.run_dir / "checkpoints" / "last.pt")["average"]
    assert equal_tensors(expected, resumed)


def test_data_from_a_file_and_yaml_config_with_overrides(tmp_path, tiny_dataset, tiny_run_config):
    data_path = tmp_path / "tiny.h5"
    write_dataset(data_path, tiny_dataset)
    tiny_run_config["data"] = str(data_path)
    config_path = tmp_path / "sae.yaml"
    config_path.write_text(yaml.safe_dump(tiny_run_config))
    result = train_from_config(config_path, out_dir=tmp_path / "run", progress=False, seed=9,
                               overrides=["training.epochs=1", "model.latent_dim=3"])
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["seed"] == 9 and saved["training"]["epochs"] == 1
    assert saved["model"]["latent_dim"] == 3 and saved["data"] == str(data_path)
    assert result.metrics["data"]["n_train"] == 400


def test_exponent_without_a_dot_is_a_number(tmp_path, tiny_dataset, tiny_run_config) -> None:
    # YAML 1.1 reads "1e-4" as a string; users write it in configs and overrides
    result = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run",
                        overrides=["training.epochs=1", "training.learning_rate=2e-4"])
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["training"]["learning_rate"] == pytest.approx(2e-4)


def test_early_stopping(tmp_path, tiny_dataset, tiny_run_config) -> None:
    tiny_run_config["training"].update(epochs=30, patience=1, learning_rate=1e-9)
    result = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run")
    assert result.metrics["stop_reason"] == "early stopping"
    assert result.metrics["epochs_run"] < 30


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=vq_gan", "unknown model 'vq_gan'"),
        ("model.latent=3", "unknown key model.latent "),
        ("training.epoch=3", "unknown key training.epoch "),
        ("training.epochs=0", "epochs must be at least 1"),
        ("training.learning_rate=fast", "training.learning_rate: expected a number"),
        ("split=[0.5, 0.1]", "split must be 3 fractions"),
        ("colour=blue", "unknown key config.colour"),
        ("training", "expected key.path=value"),
        ("training.epochs.x=1", "training.epochs is not a section"),
        ("training.ema_decay=1.5", "ema_decay must lie in"),
    ],
)
def test_bad_configs_raise_one_line(tmp_path, tiny_dataset, tiny_run_config, override, message):
    with pytest.raises(CalosimError, match=message) as raised:
        train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run", overrides=[override])
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_config_file_problems(tmp_path, tiny_dataset) -> None:
    with pytest.raises(CalosimError, match="no such config file"):
        train_from_config(tmp_path / "missing.yaml", data=tiny_dataset, out_dir=tmp_path / "r")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(CalosimError, match="not valid YAML"):
        train_from_config(broken, data=tiny_dataset, out_dir=tmp_path / "r")
    with pytest.raises(CalosimError, match="needs a model section"):
        train_from_config({"training": {}}, data=tiny_dataset, out_dir=tmp_path / "r")
    with pytest.raises(CalosimError, match="no training data"):
        train_from_config({"model": "e2e_sae"}, out_dir=tmp_path / "r")


def test_refuses_to_overwrite_or_resume_a_different_run(tmp_path, tiny_dataset, tiny_run_config):
    tiny_run_config["training"]["epochs"] = 1
    run = tmp_path / "run"
    train_tiny(tiny_run_config, tiny_dataset, run)
    with pytest.raises(CalosimError, match="already holds a training run"):
        train_tiny(tiny_run_config, tiny_dataset, run)
    with pytest.raises(CalosimError, match="model.latent_dim differs"):
        train_tiny(tiny_run_config, tiny_dataset, run, resume=True,
                   overrides=["model.latent_dim=5"])
    with pytest.raises(CalosimError, match="trained on other data"):
        train_from_config(tiny_run_config, data=tiny_dataset.subset(np.arange(450)), out_dir=run,
                          progress=False, resume=True)
    with pytest.raises(CalosimError, match="nothing to resume"):
        train_tiny(tiny_run_config, tiny_dataset, tmp_path / "new", resume=True)


def test_a_step_budget_runs_whole_epochs_until_it_is_spent(tmp_path, tiny_dataset,
                                                           tiny_run_config) -> None:
    tiny_run_config["training"].update({"epochs": 50, "batch_size": 20, "max_steps": 5,
                                        "patience": None})
    result = train_tiny(tiny_run_config, tiny_dataset, tmp_path / "run")
    n_train = result.metrics["data"]["n_train"]
    batches = n_train // 20
    assert result.metrics["epochs_run"] == -(-5 // batches)  # ceil: whole epochs
    assert result.metrics["stop_reason"] == "epochs"
