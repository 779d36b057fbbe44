"""Continual runs on the digits: `calosim train configs/images/continual_*_digits_ci.yaml`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from image_helpers import CONFIGS, assert_one_line_error, invoke

from calosim.images.generator import load_image_generator


@pytest.fixture(scope="module")
def continual_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("continual")
    runs = {}
    for strategy in ("multiband", "generative_replay"):
        out = root / strategy
        result = invoke("train", CONFIGS / f"continual_{strategy}_digits_ci.yaml", "--out", out,
                        "--no-progress")
        assert result.exit_code == 0, result.output
        runs[strategy] = out
    return runs


@pytest.mark.parametrize("strategy", ["multiband", "generative_replay"])
def test_a_class_incremental_run_leaves_an_r_matrix_of_fid(continual_runs, strategy):
    run_dir = continual_runs[strategy]
    r_matrix = json.loads((run_dir / "r_matrix.json").read_text())
    matrix = np.array(r_matrix["matrix"], dtype=float)
    assert r_matrix["metric"] == "fid" and matrix.shape == (5, 5)
    assert np.isfinite(matrix).all() and (matrix > 0).all()
    assert len(r_matrix["baseline"]) == 5
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task_classes"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert metrics["final_average"] == pytest.approx(matrix[-1].mean())
    generator = load_image_generator(run_dir / "model.pt")
    images = generator.generate(np.arange(10), seed=0)
    assert images.shape == (10, 16, 16) and 0 <= images.min() <= images.max() <= 1


def test_a_dirichlet_run_mixes_classes_in_its_tasks(tmp_path):
    out = tmp_path / "dirichlet"
    result = invoke("train", CONFIGS / "continual_generative_replay_digits_ci.yaml",
                    "continual.scenario=dirichlet", "continual.n_tasks=3", "--out", out,
                    "--no-progress")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert sum(metrics["task_sizes"]) == 1437 and len(metrics["task_sizes"]) == 3
    assert max(len(classes) for classes in metrics["task_classes"]) > 2


@pytest.mark.parametrize(("config", "override", "needle"), [
    ("continual_multiband_digits_ci", "model.task_routing=energy",
     "task_routing energy reads the particle energy"),
    ("continual_generative_replay_digits_ci", "continual.strategy=multiband",
     "strategy multiband trains model 'multiband_vae', not 'cvae'"),
    ("continual_generative_replay_digits_ci", "data.conditional=false",
     "continual image runs replay labels"),
    ("continual_generative_replay_digits_ci", "continual.scenario=iid",
     "config: continual.scenario: expected one of"),
])
def test_a_bad_continual_image_config_is_one_line(tmp_path, config, override, needle):
    result = invoke("train", CONFIGS / f"{config}.yaml", override, "--out", tmp_path / "run",
                    "--no-progress")
    assert_one_line_error(result, needle)
