"""The whole user path through the CLI: train, info on the model, generate, validate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calosim.data import read_dataset

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY_SAE = [
    "model.encoder_hidden=[32]", "model.decoder_hidden=[32]", "model.noise_hidden=[16]",
    "model.gate=false", "training.epochs=1", "training.batch_size=256",
    "model.refine_steps=20",  # the config's 10,000 take minutes
]


def test_train_then_generate_then_validate(run, simulated, tmp_path):
    run_dir = tmp_path / "sae"
    result = run("train", CONFIGS / "zdc" / "e2e_sae.yaml", *TINY_SAE, "--data", simulated,
                 "--out", run_dir, "--seed", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    model = run_dir / "model.pt"
    assert model.is_file()
    assert "refinement of epoch 1" in (run_dir / "train.log").read_text()

    held_out = tmp_path / "split"
    assert run("split", simulated, "--out-dir", held_out, "--run", run_dir).exit_code == 0
    test_rows = np.sort(np.load(run_dir / "split.npz")["test"])
    np.testing.assert_array_equal(read_dataset(held_out / "test.h5").particles,
                                  read_dataset(simulated).particles[test_rows])
    other = tmp_path / "other.h5"  # as many rows, other particles
    assert run("simulate", "--n", "3000", "--seed", "2", "--out", other,
               "--no-progress").exit_code == 0
    refused = run("split", other, "--out-dir", tmp_path / "wrong", "--run", run_dir)
    assert refused.exit_code == 1
    assert "not the data the run" in refused.stderr and "\n" not in refused.stderr.strip()
    assert not (tmp_path / "wrong").exists()

    info = json.loads(run("info", model, "--json").stdout)
    assert info["kind"] == "model" and info["simulator"] == "e2e_sae"
    assert info["integrity"]["checksum"] == "verified"

    first, again = tmp_path / "gen1.h5", tmp_path / "gen2.h5"
    for out in (first, again):
        assert run("generate", "--model", model, "--particles", simulated, "--out", out,
                   "--seed", "5", "--no-progress").exit_code == 0
    generated = read_dataset(first)
    assert generated.responses.shape == (3000, 44, 44)
    np.testing.assert_array_equal(generated.responses, read_dataset(again).responses)
    np.testing.assert_array_equal(generated.particles, read_dataset(simulated).particles)

    report = json.loads(run("validate", "--reference", simulated, "--generated", first,
                            "--json").stdout)
    assert report["metrics"]["wasserstein"]["mean"] > 0


def test_a_continual_config_runs_its_task_sequence(run, simulated, tmp_path):
    run_dir = tmp_path / "cl"
    result = run("train", CONFIGS / "continual" / "naive.yaml", "continual.n_tasks=2",
                 "model.encoder_hidden=[16]", "model.decoder_hidden=[16]", "training.epochs=1",
                 "training.batch_size=200", "model.refine_steps=20", "model.shape_refit_steps=5",
                 "model.totals_refit_steps=5", "max_rows=1500", "--data", simulated,
                 "--out", run_dir, "--no-progress")
    assert result.exit_code == 0, result.output
    matrix = json.loads((run_dir / "r_matrix.json").read_text())["matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert (run_dir / "model.pt").is_file()


def test_a_bad_override_is_one_line(run, simulated, tmp_path, assert_one_line_error):
    result = run("train", CONFIGS / "zdc" / "e2e_sae.yaml", "model.no_such_key=1",
                 "--data", simulated, "--out", tmp_path / "bad")
    assert_one_line_error(result, "no_such_key")
    assert not (tmp_path / "bad" / "model.pt").exists()
