"""The SAE, cVAE and DDPM built for other image shapes and condition widths."""

from __future__ import annotations

import pytest
import torch

from calosim.data.schema import N_ATTRIBUTES, RESPONSE_SHAPE
from calosim.errors import CalosimError
from calosim.models import Batch, build_model

SMALL = {
    "e2e_sae": {"latent_dim": 4, "noise_dim": 4, "encoder_hidden": [32], "decoder_hidden": [32],
                "noise_hidden": [16], "encoder_channel_inputs": False, "channel_weight": 0.0,
                "condition_weights": [], "gate": False},
    "cvae": {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [32],
             "channel_weight": 0.0, "kl_weight": 0.001},
    "ddpm": {"channels": [8, 16], "attention": [False, False], "heads": 1, "log_max": 1.0,
             "padded_size": 16, "diffusion_steps": 20, "sampling_steps": 3},
}


def _batch(shape: tuple[int, int], condition_dim: int, n: int = 6) -> Batch:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, *shape, generator=generator)
    conditions = torch.eye(max(condition_dim, 1))[torch.arange(n) % max(condition_dim, 1)]
    return Batch(images, conditions[:, :condition_dim], generator)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize(("shape", "condition_dim"), [((16, 16), 10), ((12, 16), 0)])
def test_a_model_trains_and_generates_images_of_its_shape(name, shape, condition_dim):
    torch.manual_seed(0)
    model = build_model(name, {**SMALL[name], "image_shape": list(shape),
                               "condition_dim": condition_dim})
    batch = _batch(shape, condition_dim)
    losses = model.training_losses(batch)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    model.eval()
    noise = torch.randn(3, *model.noise_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first = model.generate(noise, batch.conditions[:3])
        again = model.generate(noise, batch.conditions[:3])
    assert first.shape == (3, *shape)
    torch.testing.assert_close(first, again)


def test_the_zn_defaults_are_unchanged():
    for name in SMALL:
        config = build_model(name).config
        assert tuple(config.image_shape) == RESPONSE_SHAPE
        assert config.condition_dim == N_ATTRIBUTES
    assert build_model("ddpm").noise_shape == (1, 48, 48)


def test_ddpm_pads_and_crops_an_image_exactly():
    model = build_model("ddpm", {**SMALL["ddpm"], "image_shape": [12, 14], "condition_dim": 0})
    images = torch.rand(2, 12, 14, generator=torch.Generator().manual_seed(2))
    padded = model.to_model_space(images)
    assert padded.shape == (2, 1, 16, 16)
    torch.testing.assert_close(model.from_model_space(padded), images)


@pytest.mark.parametrize(("name", "values", "needle"), [
    ("e2e_sae", {"channel_weight": 1.0}, "channel_weight reads ZN channel sums"),
    ("e2e_sae", {"gate": True, "condition_dim": 0}, "gate needs conditions"),
    ("e2e_sae", {"condition_weights": [1.0] * 9}, "condition_weights must be empty or 10"),
    ("cvae", {"channel_weight": 1.0}, "channel_weight reads ZN channel sums"),
    ("ddpm", {"padded_size": 8}, "padded_size (8) must be at least the image side 16"),
    ("ddpm", {"condition_dim": -1}, "condition_dim must not be negative"),
])
def test_settings_that_do_not_fit_the_images_are_refused(name, values, needle):
    config = {**SMALL[name], "image_shape": [16, 16], "condition_dim": 10, **values}
    with pytest.raises(CalosimError, match="config: model: ") as error:
        build_model(name, config)
    assert needle in str(error.value)
