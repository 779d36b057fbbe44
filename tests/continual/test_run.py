"""train_continual_from_config: files, a loadable final model, resume, config errors,
and the comparison table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from continual_helpers import tiny_config

import calosim
from calosim.continual.compare import comparison_rows, comparison_table
from calosim.continual.run import (
    is_continual_config,
    resolve_continual_config,
    train_continual_from_config,
)
from calosim.continual.strategies.generative_replay import GenerativeReplayStrategy
from calosim.continual.strategies.multiband import MultibandStrategy
from calosim.errors import CalosimError


def test_multiband_run_writes_its_records_and_a_loadable_model(toy, tmp_path) -> None:
    result = train_continual_from_config(tiny_config("multiband"), data=toy,
                                         out_dir=tmp_path / "run", progress=False)
    run = result.run_dir
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["continual"]["strategy"] == "multiband" and saved["seed"] == 7
    assert saved["continual"]["options"]["gamma"] == 0.9
    assert saved["model"]["name"] == "multiband_vae"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tasks_learnt"] == 2 and metrics["stop_reason"] == "tasks"
    assert set(metrics["summary"]) == {"wasserstein_mean", "channel_mae", "pooled_log_w1"}
    records = [json.loads(line) for line in (run / "tasks.jsonl").read_text().splitlines()]
    assert [r["task"] for r in records] == [1, 2]
    assert 0.0 <= records[1]["losses"]["global_forgotten"] <= 1.0

    simulator = calosim.load(result.model_path)
    assert simulator.name == "multiband_vae"
    assert int(simulator.model.n_tasks_seen) == 2
    particles = toy.particles[:30]
    responses = simulator.simulate(particles, seed=2)
    assert responses.shape == (30, 44, 44) and (responses >= 0).all()
    assert np.array_equal(responses, simulator.simulate(particles, seed=2))
    assert torch.load(result.model_path, weights_only=True)["extra"]["continual"][
        "tasks_learnt"] == 2


@pytest.mark.parametrize("strategy", [MultibandStrategy, GenerativeReplayStrategy])
def test_resumed_run_equals_an_uninterrupted_one(toy, tmp_path, monkeypatch, strategy) -> None:
    """A run stopped in task 3 and resumed gives the uninterrupted run's R matrix and model,
    for a strategy of its own loop and for a plug-in of the Trainer."""
    config = tiny_config(strategy.name, n_tasks=3)
    whole = train_continual_from_config(config, data=toy, out_dir=tmp_path / "whole",
                                        progress=False)
    learn = strategy.learn_task

    def crash_at_task_three(self, task):  # type: ignore[no-untyped-def]
        if task.index == 2:
            raise KeyboardInterrupt
        return learn(self, task)

    monkeypatch.setattr(strategy, "learn_task", crash_at_task_three)
    with pytest.raises(KeyboardInterrupt):
        train_continual_from_config(config, data=toy, out_dir=tmp_path / "cut", progress=False)
    monkeypatch.setattr(strategy, "learn_task", learn)
    with pytest.raises(CalosimError, match="already holds a continual run"):
        train_continual_from_config(config, data=toy, out_dir=tmp_path / "cut", progress=False)
    resumed = train_continual_from_config(config, data=toy, out_dir=tmp_path / "cut",
                                          resume=True, progress=False)
    assert resumed.metrics["values"] == whole.metrics["values"]
    first = torch.load(whole.model_path, weights_only=True)["state_dict"]
    second = torch.load(resumed.model_path, weights_only=True)["state_dict"]
    assert all(torch.equal(first[key], second[key]) for key in first)
    changed = {**config, "training": {**config["training"], "epochs": 5}}
    with pytest.raises(CalosimError, match="cannot resume with a different config"):
        train_continual_from_config(changed, data=toy, out_dir=tmp_path / "cut", resume=True,
                                    progress=False)
    other_data = toy.subset(slice(0, len(toy) - 1))
    with pytest.raises(CalosimError, match="trained on other data"):
        train_continual_from_config(config, data=other_data, out_dir=tmp_path / "cut",
                                    resume=True, progress=False)
    with pytest.raises(CalosimError, match="nothing to resume"):
        train_continual_from_config(config, data=toy, out_dir=tmp_path / "empty", resume=True,
                                    progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"continual": {"strategy": "magic"}}, "unknown continual strategy 'magic'"),
        ({"continual": {"strategy": "naive", "n_tasks": 0}}, "n_tasks must be at least 1"),
        ({"continual": {"strategy": "ewc", "options": {"lambda": 3}}},
         "unknown key continual.options.lambda"),
        ({"continual": {"strategy": "multiband"}, "model": {"name": "cvae"}},
         "trains model 'multiband_vae', not 'cvae'"),
        ({"continual": {"strategy": "naive"}}, "needs a model section with a name"),
        ({"continual": {"strategy": "multiband"}, "standardiser": "fit"},
         "config.standardiser: expected"),
        ({"continual": {"strategy": "naive"}, "model": "e2e_sae", "floor": "geant4"},
         "config.floor: expected"),
        ({"continual": "naive"}, "continual must be a mapping"),
    ],
)
def test_bad_configs_raise_one_line(change: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        resolve_continual_config(change)
    assert "\n" not in str(raised.value)


def test_configs_in_the_repository_resolve() -> None:
    from pathlib import Path

    from calosim.training.run import load_config

    paths = sorted(Path(__file__).resolve().parents[2].glob("configs/continual/*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        config = load_config(path)
        assert is_continual_config(config)
        resolved = resolve_continual_config(config)
        # one scenario for every strategy
        assert resolved.strategy.name == path.stem and resolved.run.max_rows == 50000
        if resolved.strategy.model_name is None:  # the Trainer's plug-ins: the strong model
            model = resolved.model
            assert resolved.model_name == "e2e_sae" and model.gate and model.refine_steps > 0
    assert not is_continual_config({"model": "cvae"})


def test_comparison_table_ranks_runs_against_joint(toy, tmp_path) -> None:
    runs = []
    for strategy in ("joint", "naive"):
        train_continual_from_config(tiny_config(strategy, epochs=1), data=toy,
                                    out_dir=tmp_path / strategy, progress=False)
        runs.append(tmp_path / strategy)
    rows = comparison_rows(runs)
    assert [r["final_w1"] for r in rows] == sorted(r["final_w1"] for r in rows)
    joint = next(r for r in rows if r["strategy"] == "joint")
    assert joint["vs_joint"] == 1.0
    table = comparison_table(rows)
    assert table.splitlines()[0].startswith("| strategy | final avg W1 / floor | worst task")
    assert len(table.splitlines()) == 4
    with pytest.raises(CalosimError, match="no such file"):
        comparison_rows([tmp_path / "missing"])
