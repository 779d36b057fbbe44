"""`calosim train configs/images/digits_*.yaml` and `calosim images-bench` on the digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from image_helpers import CONFIGS, DIGITS_CONFIGS, assert_one_line_error, invoke

import calosim
from calosim.errors import ModelFileError
from calosim.images.generator import load_image_generator


def test_each_digits_run_leaves_its_files(digits_runs):
    for name, run_dir in digits_runs.items():
        for file in ("config.yaml", "model.pt", "metrics.json", "train.log", "metrics.jsonl"):
            assert (run_dir / file).is_file(), (name, file)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["benchmark"] == "digits" and metrics["epochs_run"] == 2
        assert np.isfinite(metrics["validation"]["fid"]) and metrics["train_seconds"] > 0
        assert "val FID" in (run_dir / "train.log").read_text()


def test_the_model_config_takes_its_shape_and_conditions_from_the_data(digits_runs):
    conditional = yaml.safe_load((digits_runs["digits_e2e_sae"] / "config.yaml").read_text())
    unconditional = yaml.safe_load(
        (digits_runs["digits_e2e_sae_uncond"] / "config.yaml").read_text())
    assert conditional["model"]["image_shape"] == [16, 16]
    assert conditional["model"]["condition_dim"] == 10
    assert unconditional["model"]["condition_dim"] == 0


@pytest.mark.parametrize("name", DIGITS_CONFIGS)
def test_generation_is_seeded_and_in_the_unit_range(digits_runs, name):
    generator = load_image_generator(digits_runs[name] / "model.pt")
    labels = np.arange(20) % 10
    images = generator.generate(labels, seed=3)
    assert images.shape == (20, 16, 16) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images, generator.generate(labels, seed=3))
    assert not np.array_equal(images, generator.generate(labels, seed=4))


def test_an_image_model_is_not_a_zn_simulator(digits_runs):
    with pytest.raises(ModelFileError, match="calosim-image-model"):
        calosim.load(digits_runs["digits_cvae"] / "model.pt")
    described = json.loads(invoke("info", digits_runs["digits_cvae"] / "model.pt", "--json").stdout)
    assert described["kind"] == "image model" and described["benchmark"] == "digits"
    assert described["integrity"]["checksum"] == "verified"


def test_the_benchmark_prints_the_table_and_writes_json(digits_runs, tmp_path):
    out = tmp_path / "bench" / "digits.json"
    result = invoke("images-bench", *digits_runs.values(), "--samples", "200", "--json", out)
    assert result.exit_code == 0, result.output
    for name in DIGITS_CONFIGS:
        assert name in result.stdout
    assert "floor (real test vs train)" in result.stdout
    written = json.loads(out.read_text())
    assert written["dataset"] == "digits" and written["samples"] == 200
    assert [row["label"] for row in written["models"]] == list(DIGITS_CONFIGS)
    for row in written["models"]:
        assert row["fid"] > 0 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
        assert row["generation_seconds"] > 0 and row["train_seconds"] > 0
    floor = written["floor"]
    # real test images are far closer to the training images than 2-epoch models
    assert floor["fid"] < min(row["fid"] for row in written["models"])
    assert floor["classifier_accuracy"] > 0.8
    assert not list(out.parent.glob(".*.tmp"))


@pytest.mark.parametrize(("override", "needle"), [
    ("data.benchmark=cifar", "config: data.benchmark: expected one of"),
    ("data.colour=true", "config: unknown key data.colour"),
    ("model.image_shape=[8,8]", "config: model.image_shape is [8, 8] but the data give [16, 16]"),
    ("model.channel_weight=1.0", "channel_weight reads ZN channel sums"),
    ("extra=1", "config: unknown key extra in an image config"),
])
def test_a_bad_image_config_is_one_line(tmp_path, override, needle):
    result = invoke("train", CONFIGS / "digits_cvae.yaml", override, "--out", tmp_path / "run",
                    "--no-progress")
    assert_one_line_error(result, needle)
    assert not (tmp_path / "run" / "model.pt").exists()


def test_the_benchmark_and_train_refuse_what_they_cannot_use(tmp_path):
    assert_one_line_error(invoke("images-bench", tmp_path), "not a finished image run")
    result = invoke("train", CONFIGS / "digits_cvae.yaml", "--data", tmp_path / "zn.h5",
                    "--out", tmp_path / "run", "--no-progress")
    assert_one_line_error(result, "reads its benchmark from data:")


def test_an_image_sae_refines_and_averages_its_weights(tmp_path):
    out = tmp_path / "refined"
    result = invoke("train", CONFIGS / "digits_e2e_sae.yaml", "training.epochs=1",
                    "training.ema_decay=0.9", "model.refine_steps=20", "--out", out,
                    "--no-progress")
    assert result.exit_code == 0, result.output
    assert "refinement of epoch 1" in (out / "train.log").read_text()
    refined = load_image_generator(out / "checkpoints" / "refined.pt").model.state_dict()
    best = load_image_generator(out / "checkpoints" / "best.pt").model.state_dict()
    generator = [k for k in best if k.startswith("noise_generator")]
    assert generator and not all(torch.equal(refined[k], best[k]) for k in generator)
    assert all(torch.equal(refined[k], best[k]) for k in best if k not in generator)
