"""The O2 export, checked by a consumer written from O2's interface: every shipped ZN
config that fits O2 exports, O2's hit path receives the model's photons, the classifier
decides as the gate does, units and scales files follow O2; refusals are one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from o2_consumer import O2Consumer, parse_o2_scales
from production_helpers import tiny_simulator, tiny_trained

from calosim.cli import cli
from calosim.errors import CalosimError
from calosim.metrics import channels
from calosim.models import build_model
from calosim.models.registry import model_classes
from calosim.production.o2 import DECISIONS, O2Runtime, export_o2, o2_standardiser
from calosim.production.o2 import export as export_module
from calosim.simulators.gun import ParticleGun
from calosim.simulators.loading import load

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPORTED = ["zdc/e2e_sae", "zdc/cvae", "zdc/cwae", "zdc/cgan", "continual/multiband"]
REFUSED = ["zdc/ddpm", "zdc/daed", "zdc/joint_diffusion"]
# The Multiband model takes 13 noise numbers, 3 of them drawn inside the graph, so the
# same noise cannot be given to O2 and to the model.
PAIRED = [config for config in EXPORTED if config != "continual/multiband"]
N_CONSUMED = 400


@pytest.fixture(scope="module")
def monte_carlo():
    sample = ParticleGun().sample(1024, seed=3)
    return sample.particles, load("mc").simulate(sample.particles, seed=4)


@pytest.fixture(scope="module")
def test_particles():
    return ParticleGun().sample(N_CONSUMED, seed=8).particles


@pytest.fixture(scope="module")
def shipped(monte_carlo, tmp_path_factory):
    """config -> (tiny trained simulator, its export directory)."""
    cache = {}

    def get(config):
        if config not in cache:
            simulator = tiny_trained(CONFIGS / f"{config}.yaml", *monte_carlo)
            out = tmp_path_factory.mktemp(config.replace("/", "_"))
            export_o2(simulator, out)
            cache[config] = simulator, out
        return cache[config]

    return get


def test_every_shipped_config_covered():
    zn = {f"zdc/{p.stem}" for p in (CONFIGS / "zdc").glob("*.yaml")}
    # the latent models need an autoencoder file: their export and refusal are tested
    # in tests/models (test_latent_flow.py) and below
    assert zn <= {*EXPORTED, *REFUSED, "zdc/latent_diffusion", "zdc/latent_flow"}


@pytest.mark.parametrize("config", EXPORTED)
def test_o2_runs_the_export_and_records_the_models_channel_sums(shipped, config,
                                                                test_particles):
    simulator, out = shipped(config)
    consumer = O2Consumer(out)
    generator_inputs = [(i.shape, i.type) for i in consumer.generator.get_inputs()]
    assert generator_inputs == [(["batch", 10], "tensor(float)"), (["batch", 9], "tensor(float)")]
    assert consumer.generator.get_outputs()[0].shape == ["batch", 1936]
    assert [i.shape for i in consumer.classifier.get_inputs()] == [["batch", 9]]

    o2 = consumer.channels(test_particles, np.random.default_rng(1))
    generated = channels(simulator.simulate(test_particles, seed=2), parity="even")
    assert o2.sum() > 5 * N_CONSUMED  # light reaches the hits, not only zeros
    standard_error = np.sqrt((o2.var(0) + generated.var(0)) / N_CONSUMED)
    assert np.all(np.abs(o2.mean(0) - generated.mean(0)) <= 4 * standard_error + 0.05)
    assert np.all(o2 == np.round(o2))  # integer photons, as the hits are


@pytest.mark.parametrize("config", PAIRED)
def test_each_fibre_gets_the_models_photons(shipped, config, test_particles):
    """Same noise into O2 and the model: per fibre, O2's truncated photons are the model's
    counts rounded (nearest: exactly; stochastic: floor or ceiling, unbiased)."""
    simulator, out = shipped(config)
    consumer = O2Consumer(out)
    model = simulator.model
    rng = np.random.default_rng(5)
    rows = test_particles[:60]
    noise = rng.standard_normal((len(rows), 10)).astype(np.float32)
    conditions = simulator.standardiser.transform(rows).astype(np.float32)
    with torch.inference_mode():
        counts = model.kept_counts(torch.from_numpy(noise[:, : model.response_noise_shape[0]]),
                                   torch.from_numpy(conditions)).flatten(1).numpy()
    photons = np.stack([
        np.trunc(np.expm1(consumer.response(row, n))) for row, n in zip(rows, noise, strict=True)
    ])
    photons = np.where(photons > 0, photons, 0)
    if simulator.rounding == "nearest":
        assert (photons != np.round(counts)).mean() < 1e-3
    else:
        assert np.all(np.abs(photons - counts) < 1 + 1e-3)
        per_response = photons.sum(1) - counts.sum(1)
        assert abs(per_response.mean()) < 4 * np.sqrt(counts.shape[1] / 4 / len(rows)) + 0.1


def test_the_classifier_draws_the_gates_empty_fraction(shipped, test_particles):
    simulator, out = shipped("zdc/e2e_sae")
    consumer = O2Consumer(out)
    with torch.inference_mode():
        conditions = torch.from_numpy(simulator.standardiser.transform(test_particles)
                                      .astype(np.float32))
        empty = simulator.model.empty_probability(conditions).numpy()
    assert 0.05 < empty.mean() < 0.95 and empty.std() > 0.01  # a gate that matters
    simulated = np.array([consumer.simulates(row) for row in test_particles])
    binomial = np.sqrt((empty * (1 - empty)).sum()) / len(empty)
    assert abs((1 - simulated.mean()) - empty.mean()) < 4 * binomial


def test_threshold_classifier_is_o2s_rounded_probability(shipped, test_particles, tmp_path):
    simulator, _ = shipped("zdc/e2e_sae")
    export_o2(simulator, tmp_path, decision="threshold")
    consumer = O2Consumer(tmp_path)
    with torch.inference_mode():
        conditions = torch.from_numpy(simulator.standardiser.transform(test_particles)
                                      .astype(np.float32))
        kept = 1 - simulator.model.empty_probability(conditions).numpy()
    decisions = np.array([consumer.simulates(row) for row in test_particles])
    clear = np.abs(kept - 0.5) > 1e-5
    np.testing.assert_array_equal(decisions[clear], kept[clear] >= 0.5)
    assert json.loads((tmp_path / "manifest.json").read_text())["classifier"]["decision"] == \
        "threshold"


def test_a_gate_free_model_gets_a_classifier_that_always_simulates(shipped, test_particles):
    _, out = shipped("zdc/cvae")
    consumer = O2Consumer(out)
    assert all(consumer.simulates(row) for row in test_particles[:50])
    assert json.loads((out / "manifest.json").read_text())["classifier"]["decision"] == "always"


def test_scales_absorb_o2s_charge_unit(shipped):
    simulator, out = shipped("zdc/e2e_sae")
    means, scales = parse_o2_scales(out / "scales.txt")
    assert parse_o2_scales(out / "classifier_scales.txt") == (means, scales)
    proton = np.array([[1000.0, 0, 0, 0, 0, 0, 1000.0, 938.272, 1.0]])
    o2_row = O2Consumer.attributes(proton[0])
    assert o2_row[8] == 3.0
    np.testing.assert_allclose(O2Consumer.standardise(o2_row, (means, scales)),
                               simulator.standardiser.transform(proton), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o2_standardiser(simulator.standardiser).means[8],
                               3 * simulator.standardiser.means[8])


def test_manifest_names_every_file_and_the_conventions(shipped):
    _, out = shipped("zdc/e2e_sae")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["channels"]["parity"] == "even"
    assert manifest["generator"]["rounding"] == "stochastic"
    assert manifest["classifier"]["decision"] == "sample"
    for part in ("generator", "classifier"):
        entry = manifest[part]
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
        assert (out / entry["scales"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        "classifier.onnx", "classifier_scales.txt", "manifest.json", "model.onnx",
        "scales.txt"]


def test_calosims_runner_matches_the_consumer(shipped, test_particles):
    simulator, out = shipped("zdc/e2e_sae")
    runtime = O2Runtime(out)
    one_by_one = channels(runtime.simulate(test_particles, seed=3), parity="even")
    batched = channels(runtime.simulate_batched(test_particles, seed=4, batch_size=64),
                       parity="even")
    o2 = O2Consumer(out).channels(test_particles, np.random.default_rng(6))
    for ours in (one_by_one, batched):
        error = np.sqrt((o2.var(0) + ours.var(0)) / N_CONSUMED)
        assert np.all(np.abs(o2.mean(0) - ours.mean(0)) <= 4 * error + 0.05)


@pytest.mark.parametrize("config", REFUSED)
def test_configs_o2_cannot_run_are_refused_in_one_line(config, tmp_path, monte_carlo):
    import yaml

    model_config = dict(yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())["model"])
    name = model_config.pop("name")
    simulator = tiny_simulator(monte_carlo[0])
    simulator.model = build_model(name, model_config)
    with pytest.raises(CalosimError, match="iterative diffusion sampler") as info:
        export_o2(simulator, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    assert model_classes("latent_diffusion")[1].onnx_refusal == \
        model_classes("ddpm")[1].onnx_refusal


def test_a_graph_that_disagrees_with_torch_is_refused(monkeypatch, tmp_path, monte_carlo):
    real_run = export_module._run

    def drifting(model_bytes, inputs):
        return [output + 0.01 for output in real_run(model_bytes, inputs)]

    monkeypatch.setattr(export_module, "_run", drifting)
    with pytest.raises(CalosimError, match="disagrees with the model"):
        export_o2(tiny_simulator(monte_carlo[0]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unexportable_operation_is_one_line_and_nothing_on_stderr(
        monkeypatch, tmp_path, monte_carlo, capfd):
    simulator = tiny_simulator(monte_carlo[0])
    original = simulator.model.kept_counts

    def with_eigenvalues(noise, conditions):
        counts = original(noise, conditions)
        square = conditions[:, :4].T @ conditions[:, :4]
        return counts + torch.linalg.eigvals(square).real.sum() * 0

    monkeypatch.setattr(simulator.model, "kept_counts", with_eigenvalues)
    with pytest.raises(CalosimError, match="cannot be exported to ONNX") as info:
        export_o2(simulator, tmp_path / "out")
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    assert capfd.readouterr().err == ""


def test_a_failed_write_leaves_existing_files_untouched(tmp_path, model_file, monkeypatch):
    out_dir = tmp_path / "o2"
    out_dir.mkdir()
    (out_dir / "model.onnx").write_bytes(b"old model")
    (out_dir / "scales.txt").write_text("old scales")

    def broken_disk(path, standardiser):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_scales_file", broken_disk)
    with pytest.raises(CalosimError, match="No space left"):
        export_o2(load(model_file), out_dir)
    assert (out_dir / "model.onnx").read_bytes() == b"old model"
    assert (out_dir / "scales.txt").read_text() == "old scales"
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.onnx", "scales.txt"]


def test_export_command(tmp_path, model_file):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--model", str(model_file), "--format", "onnx",
                                 "--out", str(tmp_path / "o2")])
    assert result.exit_code == 0, result.output
    assert "classifier.onnx" in result.stdout and "manifest.json" in result.stdout
    manifest = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert manifest["training_run"]["model_file_sha256"] == \
        hashlib.sha256(model_file.read_bytes()).hexdigest()
    session = onnxruntime.InferenceSession(str(tmp_path / "o2" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()][0] == "response"
    for args, message in [
        (["--model", "mc", "--out", str(tmp_path / "mc")],
         "calosim: error: 'mc' is not a learned model (only model files export to ONNX)"),
        (["--model", str(model_file), "--out", ""],
         "calosim: error: --out must name a directory"),
    ]:
        refused = runner.invoke(cli, ["export", *args])
        assert refused.exit_code == 1
        assert refused.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "mc").exists()


def test_cli_choices_are_the_decisions():
    from calosim.cli import export

    assert export.DECISIONS == DECISIONS


def test_bench_times_an_export_as_o2_calls_it(shipped):
    _, out = shipped("zdc/e2e_sae")
    result = CliRunner().invoke(cli, ["bench", "--onnx", str(out), "--n", "300", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["n"] == 300 and figures["batch_size"] == 8192
    assert figures["batch1_responses_per_second"] > 0
    assert figures["batched_responses_per_second"] > 0
    assert 0.2 < figures["simulated_fraction"] < 0.9 and figures["mean_photons"] > 10
