"""Latent diffusion: the autoencoder taken from a model file, frozen and stored inside,
few-step DDIM in latent space, whole training runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from baseline_helpers import make_batch, one_torch_thread, raw_particles, sae_model_file

from calosim.data.dataset import ZDCDataset
from calosim.data.transforms import ParticleStandardiser, counts_from_log
from calosim.errors import CalosimError, ModelFileError
from calosim.metrics import channel_mask, channels
from calosim.models import LearnedSimulator, build_model
from calosim.models.latent_diffusion import LatentDiffusion
from calosim.simulators.gun import simulate_dataset
from calosim.training.checkpoint import load_simulator, save_model_file
from calosim.training.run import train_from_config

TINY_SAE = {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [16, 32],
            "noise_hidden": [16], "sinkhorn_blur": 0.1}
TINY_LATENT = {"width": 32, "depth": 2, "embedding_dim": 16, "diffusion_steps": 100,
               "sampling_steps": 5}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture
def sae_file(tmp_path: Path) -> Path:
    """A (randomly initialised) e2e SAE in a model file."""
    return sae_model_file(tmp_path / "sae" / "model.pt", TINY_SAE)


def latent_model(sae_file: Path, **values) -> LatentDiffusion:
    torch.manual_seed(1)
    return build_model("latent_diffusion",
                       {**TINY_LATENT, "autoencoder": str(sae_file), **values})


def test_the_autoencoder_is_read_from_its_file_and_frozen(sae_file: Path, synthetic_batch) -> None:
    model = latent_model(sae_file)
    assert model.config.autoencoder_config["model_name"] == "e2e_sae"
    assert model.config.autoencoder_config["config"]["latent_dim"] == 4
    assert bool(model.autoencoder_loaded)
    # the code's 4 numbers, the 5 log channel sums, one for the autoencoder's gate
    assert model.gated and model.noise_shape == (10,)
    assert latent_model(sae_file, use_gate=False).noise_shape == (9,)
    assert latent_model(sae_file, diffuse_totals=False).noise_shape == (5,)
    saved = torch.load(sae_file, weights_only=True)["state_dict"]
    for name, value in model.autoencoder.state_dict().items():
        assert torch.equal(value, saved[name])
    (optimiser,) = model.configure_optimisers(1e-3, 0.0)
    trainable = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert not any(id(p) in trainable for p in model.autoencoder.parameters())
    model.train()
    assert not model.autoencoder.training
    images, conditions = synthetic_batch
    model.training_step(make_batch(images, conditions), [optimiser])
    for name, value in model.autoencoder.state_dict().items():
        assert torch.equal(value, saved[name])


def test_latent_statistics_come_from_the_first_batch(sae_file: Path, synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = latent_model(sae_file, diffuse_totals=False)
    model.training_losses(make_batch(images, conditions))
    with torch.no_grad():
        codes = model.autoencoder.encode(images)
    assert torch.allclose(model.latent_mean, codes.mean(0))
    assert torch.allclose(model.latent_std, codes.std(0))
    standardised = model.encode(images)
    assert torch.allclose(standardised.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(model.decode(standardised), model.autoencoder.decode(codes), atol=1e-5)


def test_diffused_totals_are_the_log_channel_sums(sae_file: Path, synthetic_batch) -> None:
    """Training vectors end in log(1 + channel sums) of the response; decoding rescales the
    autoencoder's response to the vector's sums, keeping the spread within each channel."""
    images, conditions = synthetic_batch
    model = latent_model(sae_file)
    model.training_losses(make_batch(images, conditions))
    sums = channels(counts_from_log(images))
    assert torch.allclose(model.latent_mean[4:], sums.log1p().mean(0))
    assert torch.allclose(model.latent_std[4:], sums.log1p().std(0))
    with torch.no_grad():
        model.autoencoder.decoder.mlp.last_linear.bias.fill_(1.0)  # light in every channel
    latents = torch.randn(8, 9, generator=torch.Generator().manual_seed(3))
    wanted = (latents * model.latent_std + model.latent_mean)[:, 4:].expm1().clamp(min=0)
    with torch.no_grad():
        counts = model.decode_counts(latents)
        plain = model.autoencoder.decode_counts(
            (latents * model.latent_std + model.latent_mean)[:, :4])
    assert torch.allclose(channels(counts), wanted, rtol=1e-4)
    pixel_channel = torch.from_numpy(channel_mask().argmax(axis=1))
    factor = (wanted / channels(plain))[:, pixel_channel].view(8, 44, 44)
    assert torch.allclose(counts, plain * factor, rtol=1e-4)
    assert torch.allclose(model.decode(latents), counts.log1p(), atol=1e-5)


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"autoencoder": None}, CalosimError, "needs model.autoencoder"),
        ({"autoencoder": "missing/model.pt"}, ModelFileError, "missing/model.pt: no such file"),
        ({"autoencoder_config": {"model_name": 3}}, CalosimError, "autoencoder_config must be"),
        ({"width": 0}, CalosimError, "width and depth must be positive"),
    ],
)
def test_bad_configs_raise_one_line(values: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        build_model("latent_diffusion", {**TINY_LATENT, **values})
    assert "\n" not in str(raised.value)


def test_a_file_that_is_no_model_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a model")
    with pytest.raises(ModelFileError, match="notes.pt: not a calosim model file"):
        build_model("latent_diffusion", {**TINY_LATENT, "autoencoder": str(bogus)})


def test_an_embedded_config_without_weights_is_not_trained(sae_file: Path, synthetic_batch):
    spec = latent_model(sae_file).config.autoencoder_config
    model = build_model("latent_diffusion", {**TINY_LATENT, "autoencoder_config": spec})
    images, conditions = synthetic_batch
    with pytest.raises(CalosimError, match="no autoencoder weights were loaded"):
        model.training_losses(make_batch(images, conditions))


def test_a_tiny_model_overfits_one_batch(sae_file: Path, synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = latent_model(sae_file)
    (optimiser,) = model.configure_optimisers(3e-3, 0.0)
    losses = [model.training_step(make_batch(images, conditions, seed=2), [optimiser])["loss"]
              for _ in range(150)]
    assert losses[-1] < 0.3 * losses[0]


def test_sampling_with_precomputed_embedding_terms_equals_the_plain_forward(sae_file: Path):
    """Generation splits the embedding's projections into a particle part (once) and a step
    part (per step); by linearity that is the network applied to the summed embedding."""
    model = latent_model(sae_file).eval()
    with torch.no_grad():
        model.denoiser.output[-1].weight.normal_(0.0, 0.1)
    conditions = torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    z = torch.randn(6, model.data_dim, generator=torch.Generator().manual_seed(1))
    step = torch.tensor([37])
    with torch.no_grad():
        particle = model.condition_embedding(conditions)
        time = model.time_embedding(step)
        direct = model.denoiser(z, time + particle)
        terms = [a + b for a, b in zip(model.denoiser.embedding_terms(time),
                                       model.denoiser.embedding_terms(particle, bias=False),
                                       strict=True)]
        assert torch.allclose(model.denoiser(z, terms=terms), direct, atol=1e-6)


def test_guidance_mixes_in_the_null_particle(sae_file: Path) -> None:
    plain = latent_model(sae_file, condition_dropout=0.1, use_gate=False).eval()
    guided = latent_model(sae_file, condition_dropout=0.1, guidance_scale=1.5,
                          use_gate=False).eval()
    for model in (plain, guided):
        with torch.no_grad():
            model.denoiser.output[-1].weight.normal_(0.0, 0.1,
                                                     generator=torch.Generator().manual_seed(2))
            model.condition_embedding.null.fill_(0.3)
    noise = torch.randn(5, *plain.noise_shape, generator=torch.Generator().manual_seed(3))
    conditions = torch.randn(5, 9, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        assert not torch.allclose(plain.generate(noise, conditions),
                                  guided.generate(noise, conditions))


def test_the_autoencoders_gate_decides_the_empty_responses(sae_file: Path) -> None:
    """Row i is empty exactly when the gate draws it so from the last noise column (the
    e2e SAE's own rule); the other rows are decoded codes."""
    model = latent_model(sae_file).eval()
    with torch.no_grad():
        model.autoencoder.decoder.mlp.last_linear.bias.fill_(1.0)  # no row decodes to zeros
        model.latent_mean[4:] = 5.0  # nor to channel sums of zero
    noise = torch.randn(200, *model.noise_shape, generator=torch.Generator().manual_seed(0))
    conditions = torch.randn(200, 9, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        images = model.generate(noise, conditions)
        probability = model.autoencoder.empty_probability(conditions)
    drawn_empty = 0.5 * (1 + torch.erf(noise[:, -1] / 2**0.5)) < probability
    assert 0 < int(drawn_empty.sum()) < 200
    assert torch.equal(images.flatten(1).amax(dim=1) <= 0, drawn_empty)


def test_counts_path_matches_the_log_space_generation(sae_file: Path) -> None:
    model = latent_model(sae_file).eval()
    noise = torch.randn(30, *model.noise_shape, generator=torch.Generator().manual_seed(0))
    conditions = torch.randn(30, 9, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.allclose(model.generate_counts(noise, conditions),
                              counts_from_log(model.generate(noise, conditions)), atol=1e-5)


def test_training_sees_the_non_empty_responses_only(sae_file: Path, synthetic_batch) -> None:
    images, conditions = synthetic_batch
    images = images.clone()
    images[::2] = 0.0
    model = latent_model(sae_file)
    model.training_losses(make_batch(images, conditions))
    with torch.no_grad():
        codes = model.autoencoder.encode(images[1::2])
    assert torch.allclose(model.latent_mean[:4], codes.mean(0))
    empty = model.training_losses(make_batch(torch.zeros_like(images), conditions))["loss"]
    assert empty.item() == 0.0
    empty.backward()  # a batch of empty responses trains nothing, and fails nothing
    ungated = latent_model(sae_file, use_gate=False)
    ungated.training_losses(make_batch(images, conditions))
    with torch.no_grad():
        assert torch.allclose(ungated.latent_mean[:4], model.autoencoder.encode(images).mean(0))


@pytest.mark.parametrize(("missing", "noise_shape"), [
    (("use_gate", "diffuse_totals"), (4,)),  # before both options: codes only, no gate
    (("diffuse_totals",), (5,)),  # before diffuse_totals: codes and the gate
])
def test_files_from_before_an_option_sample_without_it(
    sae_file: Path, tmp_path: Path, missing: tuple[str, ...], noise_shape: tuple[int, ...]
) -> None:
    model = latent_model(sae_file, **{key: False for key in missing}).eval()
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(100)),
                                 model_name="latent_diffusion")
    path = save_model_file(tmp_path / "latent.pt", simulator, seed=1)
    payload = torch.load(path, weights_only=True)
    for key in missing:
        del payload["config"][key]
    del payload["integrity"]  # as written before files carried checksums
    torch.save(payload, path)
    loaded = load_simulator(path)
    assert loaded.model.noise_shape == noise_shape
    assert loaded.model.gated == ("use_gate" not in missing)
    particles = raw_particles(20, seed=2)
    assert np.array_equal(loaded.simulate(particles, seed=5), simulator.simulate(particles, seed=5))


def test_the_model_file_holds_the_autoencoder(sae_file: Path, tmp_path: Path) -> None:
    """Saved, the autoencoder file deleted, loaded: the same responses for a seed."""
    model = latent_model(sae_file, eta=0.5).eval()
    with torch.no_grad():
        model.denoiser.output[-1].weight.normal_(0.0, 0.1)
        model.autoencoder.decoder.mlp.last_linear.bias.fill_(1.0)  # bright enough to count
        model.latent_mean[4:] = 7.0  # ~1000 photons per channel
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(100)),
                                 model_name="latent_diffusion")
    path = save_model_file(tmp_path / "latent.pt", simulator, seed=1)
    sae_file.unlink()
    loaded = load_simulator(path)
    particles = raw_particles(50, seed=2)
    original = simulator.simulate(particles, seed=5)
    assert original.sum() > 0
    assert loaded.model.config == model.config
    assert np.array_equal(loaded.simulate(particles, seed=5), original)
    assert not np.array_equal(loaded.simulate(particles, seed=6), original)


def test_train_and_resume_from_a_config(sae_file: Path, tmp_path: Path) -> None:
    particles, pdg, responses = simulate_dataset(300, seed=3)
    dataset = ZDCDataset(responses=responses, particles=particles, pdg=pdg)
    config = {
        "model": {"name": "latent_diffusion", "autoencoder": str(sae_file), **TINY_LATENT},
        "training": {"epochs": 1, "batch_size": 60, "validation_size": 30, "patience": None},
        "seed": 4, "test_size": 30,
    }
    run_dir = tmp_path / "run"
    result = train_from_config(config, data=dataset, out_dir=run_dir, progress=False)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["autoencoder_config"]["model_name"] == "e2e_sae"
    assert result.metrics["test"]["n"] == 30
    config["training"]["epochs"] = 2
    resumed = train_from_config(config, data=dataset, out_dir=run_dir, resume=True,
                                progress=False)
    assert resumed.metrics["epochs_run"] == 2
    simulator = load_simulator(resumed.model_path)
    assert simulator.simulate(particles[:5], seed=1).shape == (5, 44, 44)
