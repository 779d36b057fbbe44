"""ONNX export for ALICE O2: interface, agreement with torch, O2's channel recipe,
refusals and atomic writing."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from production_helpers import tiny_simulator

from calosim.cli import cli
from calosim.data import read_scales_file
from calosim.errors import CalosimError
from calosim.metrics import channel_mask, channels
from calosim.production import export as export_module
from calosim.production.export import export_onnx, run_onnx
from calosim.simulators.base import block_generators
from calosim.simulators.loading import load


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model_file):
    out_dir = tmp_path_factory.mktemp("o2")
    result = export_onnx(load(model_file), out_dir)
    assert result.max_abs_difference <= 1e-5
    return out_dir


def test_files_have_the_o2_interface(exported, model_file):
    assert sorted(p.name for p in exported.iterdir()) == ["model.onnx", "scales.txt"]
    session = onnxruntime.InferenceSession(str(exported / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    inputs = [(i.name, i.shape, i.type) for i in session.get_inputs()]
    assert inputs == [("noise", ["batch", 10], "tensor(float)"),
                      ("conditions", ["batch", 9], "tensor(float)")]
    outputs = [(o.name, o.shape) for o in session.get_outputs()]
    assert outputs == [("response", ["batch", 1936])]

    text = (exported / "scales.txt").read_text().splitlines()
    assert text[0] == "#means" and text[10] == "" and text[11] == "#scales" and len(text) == 21
    standardiser = load(model_file).standardiser
    scales = read_scales_file(exported / "scales.txt")
    np.testing.assert_array_equal(scales.means, standardiser.means)
    np.testing.assert_array_equal(scales.scales, standardiser.scales)


@pytest.mark.parametrize("batch", [1, 257])
def test_onnxruntime_agrees_with_the_torch_model(exported, model_file, batch):
    model = load(model_file).model.eval()
    rng = np.random.default_rng(batch)
    noise = rng.standard_normal((batch, 10), dtype=np.float32)
    conditions = rng.standard_normal((batch, 9), dtype=np.float32)
    with torch.inference_mode():
        images = model.generate(torch.from_numpy(noise), torch.from_numpy(conditions))
    expected = images.clamp(min=0).reshape(batch, 1936).numpy()
    got = run_onnx(exported / "model.onnx", noise, conditions)
    assert got.shape == (batch, 1936)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert (images < 0).any()  # so the clamp above is exercised, not vacuous


def test_o2_channel_recipe_reproduces_calosim_generation(exported, model_file, gun_particles):
    """O2: standardise with scales.txt, feed standard-normal noise, exp(x) - 1 per pixel,
    sum the 5 channels (default convention), round. With the noise calosim draws for
    the same seed, that gives calosim's own channels."""
    particles, seed = gun_particles[0][:1000], 5
    simulator = load(model_file)
    assert simulator.round_counts is False  # channels of unrounded counts, as O2 sums them
    calosim_channels = channels(simulator.simulate(particles, seed=seed))

    (generator,) = block_generators(seed, 0, len(particles))  # one random block
    noise = generator.standard_normal((len(particles), 10), dtype=np.float32)
    conditions = read_scales_file(exported / "scales.txt").transform(particles)
    flat = run_onnx(exported / "model.onnx", noise, conditions.astype(np.float32))
    o2_sums = np.expm1(flat.astype(np.float64)) @ channel_mask("odd")
    o2_channels = np.rint(o2_sums)

    np.testing.assert_allclose(o2_sums, calosim_channels, rtol=1e-4, atol=1e-3)
    assert np.abs(o2_channels - np.rint(calosim_channels)).max() <= 1
    assert (o2_channels == np.rint(calosim_channels)).mean() > 0.99
    assert o2_channels.sum() > 0


def test_models_o2_cannot_run_are_refused_in_one_line(tmp_path, gun_particles):
    gated = tiny_simulator(gun_particles[0], gate=True)
    diffusion_like = tiny_simulator(gun_particles[0])
    diffusion_like.model.onnx_refusal = "an iterative sampler (1000 denoising steps)"
    cases = [(gated, "noise of shape (11,)"), (load("mc"), "not a learned model"),
             (diffusion_like, "iterative sampler")]
    for simulator, needle in cases:
        with pytest.raises(CalosimError, match=needle.replace("(", r"\(").replace(")", r"\)")) \
                as info:
            export_onnx(simulator, tmp_path / "out")
        assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_failed_export_leaves_existing_files_untouched(tmp_path, model_file, monkeypatch):
    out_dir = tmp_path / "o2"
    out_dir.mkdir()
    (out_dir / "model.onnx").write_bytes(b"old model")
    (out_dir / "scales.txt").write_text("old scales")

    def broken_disk(path, standardiser):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_scales_file", broken_disk)
    with pytest.raises(CalosimError, match="No space left"):
        export_onnx(load(model_file), out_dir)
    assert (out_dir / "model.onnx").read_bytes() == b"old model"
    assert (out_dir / "scales.txt").read_text() == "old scales"
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.onnx", "scales.txt"]


def test_export_command(tmp_path, model_file):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--model", str(model_file), "--format", "onnx",
                                 "--out", str(tmp_path / "o2")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o2" / "model.onnx").is_file() and "scales.txt" in result.stdout
    refused = runner.invoke(cli, ["export", "--model", "mc", "--out", str(tmp_path / "mc")])
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        "calosim: error: 'mc' is not a learned model (only model files export to ONNX)"]
