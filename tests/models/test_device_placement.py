"""The pixel-space diffusion models keep every tensor on their inputs' device.

No GPU here, so PyTorch's "meta" device stands in for one: a meta tensor has a shape and
no data, and any op mixing it with a CPU tensor raises, just as CUDA does. A model that
builds a tensor on the CPU in its loss or its sampler (the usual way a model breaks on
``--device cuda``) fails these tests. The trainer, the simulator and the CLI around the
models were run on an H100; these tests cover the model code between them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from baseline_helpers import one_torch_thread, raw_particles, seeded_model

from calosim.data.transforms import ParticleStandardiser
from calosim.models import Batch, GenerativeModel
from calosim.models.joint_diffusion import JointDiffusion

TINY_UNET = {"channels": [8, 16], "attention": [False, True], "heads": 2,
             "diffusion_steps": 40, "sampling_steps": 4}
DAED_PARTS = {"dae_channels": [8, 16], "dae_attention": [False, True], "switch_beta": 0.1}
CASES = {
    "ddpm-ddim": ("ddpm", {}),
    "ddpm-ddim-eta-v-vlb": ("ddpm", {"eta": 0.5, "prediction": "v", "objective": "vlb"}),
    "ddpm-ancestral-linear": ("ddpm", {"sampler": "ancestral", "schedule": "linear",
                                       "ancestral_variance": "beta"}),
    "ddpm-dpm-solver-guided": ("ddpm", {"sampler": "dpm_solver", "condition_dropout": 0.2,
                                        "guidance_scale": 1.5}),
    "daed": ("daed", DAED_PARTS),
    "daed-conditional-dae": ("daed", {**DAED_PARTS, "dae_conditional": True}),
    "joint-family": ("joint_diffusion", {"representation_step": 1.0,
                                         "noisy_classifier_max_step": 10}),
    "joint-energy-guided": ("joint_diffusion", {"class_source": "energy_bin",
                                                "representation_step": -0.5,
                                                "condition_dropout": 0.2,
                                                "guidance_scale": 1.0}),
}
N_ROWS = 3


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def model_on_meta(name: str, values: dict) -> GenerativeModel:
    model = seeded_model(name, {**TINY_UNET, **values})
    if isinstance(model, JointDiffusion):
        # the class boundaries come from data (torch.unique has no meta kernel); fit them
        # on the CPU as the first training batch would
        particles = raw_particles(200, seed=2)
        particles[:, 8] = 0.0
        particles[:50, 8] = 1.0
        model.fit_classes(torch.from_numpy(ParticleStandardiser.fit(particles).transform(
            particles)))
    return model.to("meta")


@pytest.mark.parametrize(("name", "values"), CASES.values(), ids=CASES.keys())
def test_training_loss_and_gradients_stay_on_the_models_device(name: str, values: dict) -> None:
    model = model_on_meta(name, values)
    batch = Batch(torch.empty(N_ROWS, 44, 44, device="meta"),
                  torch.empty(N_ROWS, 9, device="meta"), torch.Generator().manual_seed(0))
    losses = model.training_losses(batch)
    losses["loss"].backward()
    assert {value.device.type for value in losses.values()} == {"meta"}
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and {g.device.type for g in gradients} == {"meta"}


@pytest.mark.parametrize(("name", "values"), CASES.values(), ids=CASES.keys())
def test_generation_stays_on_the_models_device(name: str, values: dict) -> None:
    model = model_on_meta(name, values).eval()
    with torch.inference_mode():
        images = model.generate(torch.empty(N_ROWS, *model.noise_shape, device="meta"),
                                torch.empty(N_ROWS, 9, device="meta"))
    assert images.device.type == "meta"
    assert images.shape == (N_ROWS, 44, 44)


def test_a_tensor_left_on_the_cpu_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in works: a sampler step that builds its step tensor on the CPU fails."""
    model = model_on_meta("ddpm", {})

    def embed_with_cpu_steps(steps: torch.Tensor, *args: object):
        return original_embed(torch.zeros(steps.shape, dtype=torch.long), *args)

    original_embed = model.network.embed
    monkeypatch.setattr(model.network, "embed", embed_with_cpu_steps)
    with pytest.raises(RuntimeError, match="device"), torch.inference_mode():
        model.generate(torch.empty(N_ROWS, *model.noise_shape, device="meta"),
                       torch.empty(N_ROWS, 9, device="meta"))
