"""Joint diffusion: particle classes, the joint loss, representation optimisation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from baseline_helpers import make_batch, one_torch_thread, raw_particles, seeded_model

from calosim.data.transforms import ALICE_DEPLOYED, ParticleStandardiser
from calosim.errors import CalosimError
from calosim.models import LearnedSimulator, build_model
from calosim.models.joint_diffusion import JointDiffusion
from calosim.nn.unet import pooled_features
from calosim.training.checkpoint import load_simulator, save_model_file

TINY_JOINT = {"channels": [8, 16], "attention": [False, False], "heads": 2,
              "diffusion_steps": 40, "sampling_steps": 4}
# (mass MeV, charge e, family): photon, electron, positron, neutron, Lambda, K0L, proton,
# pi+, pi-, K-
SPECIES = [(0.0, 0, 0), (0.511, -1, 0), (0.511, 1, 0), (939.6, 0, 1), (1115.7, 0, 1),
           (497.6, 0, 1), (938.3, 1, 2), (139.6, 1, 2), (139.6, -1, 2), (493.7, -1, 2)]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


ZN_LIKE = (0.55, 0.01, 0.01, 0.2, 0.03, 0.05, 0.08, 0.03, 0.02, 0.02)
BALANCED = (1, 0, 0, 1, 0, 0, 1, 0, 0, 0)  # photons, neutrons, protons


def particles_of_families(
    n: int, seed: int, mix: tuple[float, ...] = ZN_LIKE
) -> tuple[np.ndarray, np.ndarray]:
    """Raw particles of a species mix (default ZN-like: mostly neutral), their families."""
    rng = np.random.default_rng(seed)
    weights = np.array(mix, dtype=np.float64)
    kind = rng.choice(len(SPECIES), size=n, p=weights / weights.sum())
    raw = raw_particles(n, seed)
    raw[:, 7] = [SPECIES[k][0] for k in kind]
    raw[:, 8] = [SPECIES[k][1] for k in kind]
    return raw, np.array([SPECIES[k][2] for k in kind])


def toy_images(families: np.ndarray, seed: int) -> np.ndarray:
    """log(1 + counts): a narrow central spot (family 0), a wide spot (1), a narrow spot off
    centre (2)."""
    rng = np.random.default_rng(seed)
    grid = np.arange(44.0)
    width = np.array([2.0, 6.0, 2.0])[families][:, None, None]
    centre = np.array([21.5, 21.5, 10.0])[families][:, None, None]
    shape = np.exp(-((grid[None, :, None] - centre) ** 2 + (grid[None, None, :] - centre) ** 2)
                   / (2 * width**2))
    counts = rng.poisson(300 * shape / shape.sum(axis=(1, 2), keepdims=True))
    return np.log1p(counts).astype(np.float32)


@pytest.mark.parametrize("standardiser", ["fit", "alice"])
def test_family_classes_do_not_depend_on_the_standardisation(standardiser: str) -> None:
    raw, families = particles_of_families(1000, seed=0)
    scaler = ParticleStandardiser.fit(raw) if standardiser == "fit" else ALICE_DEPLOYED
    conditions = torch.from_numpy(scaler.transform(raw))
    model = build_model("joint_diffusion", TINY_JOINT)
    model.fit_classes(conditions[:500])
    labels = model.class_labels(conditions).numpy()
    assert np.array_equal(labels, families)


def test_energy_bins_have_equal_frequency_on_the_fitted_batch() -> None:
    model = build_model("joint_diffusion", {**TINY_JOINT, "class_source": "energy_bin",
                                            "energy_bins": 4})
    conditions = torch.randn(400, 9, generator=torch.Generator().manual_seed(0))
    model.fit_classes(conditions)
    labels = model.class_labels(conditions)
    assert torch.bincount(labels).tolist() == [100, 100, 100, 100]
    order = conditions[:, 0].argsort()
    assert torch.all(labels[order].diff() >= 0)  # bins increase with energy


def test_classes_need_fitting_and_bad_configs_fail_in_one_line() -> None:
    model = build_model("joint_diffusion", TINY_JOINT)
    with pytest.raises(CalosimError, match="not fitted"):
        model.class_labels(torch.zeros(2, 9))
    for values, message in [({"energy_bins": 1}, "energy_bins must be at least 2"),
                            ({"noisy_classifier_max_step": 41}, "must lie in 1..40"),
                            ({"class_source": "pdg"}, "expected one of"),
                            ({"condition_on_attributes": False, "condition_dropout": 0.1,
                              "guidance_scale": 1.0}, "needs condition_on_attributes")]:
        with pytest.raises(CalosimError, match=message) as raised:
            build_model("joint_diffusion", {**TINY_JOINT, **values})
        assert "\n" not in str(raised.value)


def test_joint_loss_has_all_parts_and_fits_classes_on_the_first_batch(synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = seeded_model("joint_diffusion", {**TINY_JOINT, "noisy_classifier_max_step": 10})
    losses = model.training_losses(make_batch(images, conditions))
    assert set(losses) == {"loss", "diffusion", "classifier", "noisy_classifier", "accuracy"}
    expected = losses["diffusion"] + losses["classifier"] + losses["noisy_classifier"]
    assert torch.allclose(losses["loss"], expected)
    assert bool(model.classes_fitted)
    plain = seeded_model("joint_diffusion", {**TINY_JOINT, "noisy_classifier": False})
    assert "noisy_classifier" not in plain.training_losses(make_batch(images, conditions))


def test_classifier_accuracy_rises_above_chance_on_a_toy_set() -> None:
    raw, families = particles_of_families(200, seed=1, mix=BALANCED)
    conditions = torch.from_numpy(ParticleStandardiser.fit(raw).transform(raw))
    images = torch.from_numpy(toy_images(families, seed=2))
    model = seeded_model("joint_diffusion", TINY_JOINT)
    (optimiser,) = model.configure_optimisers(5e-3, 0.0)
    for step in range(20):
        rows = slice(16 * step % 144, 16 * step % 144 + 16)
        model.training_step(make_batch(images[rows], conditions[rows], seed=step), [optimiser])
    model.eval()
    with torch.no_grad():
        predicted = model.classify(images[150:]).argmax(dim=1)
    chance = np.bincount(families[150:]).max() / 50
    accuracy = (predicted.numpy() == families[150:]).mean()
    assert accuracy > chance + 0.15


def test_representation_step_raises_the_target_class_probability() -> None:
    """Algorithm 1: the edited features score the particle's class higher, also under
    inference mode (as LearnedSimulator runs the model)."""
    model: JointDiffusion = seeded_model("joint_diffusion",
                                         {**TINY_JOINT, "representation_step": 2.0}).eval()
    raw, _ = particles_of_families(64, seed=3)
    conditions = torch.from_numpy(ParticleStandardiser.fit(raw).transform(raw))
    model.fit_classes(conditions)
    labels = model.class_labels(conditions)
    with torch.inference_mode():
        emb, _ = model.network.embed(torch.full((64,), 20))
        features = model.network.encode(torch.randn(64, 1, 48, 48), emb)
        edited = model.edit_features(features, 20, conditions)

        def target_log_prob(feats: list[torch.Tensor]) -> torch.Tensor:
            log_p = F.log_softmax(model.class_logits(feats), dim=1)
            return log_p.gather(1, labels[:, None]).squeeze(1)

        assert torch.all(target_log_prob(edited) > target_log_prob(features))
        # each map moved by one constant per channel: its pooled mean moved, nothing else
        shift = edited[0] - features[0]
        assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
        assert not torch.allclose(pooled_features(edited), pooled_features(features))


def test_without_attributes_only_the_class_conditions_generation() -> None:
    config = {**TINY_JOINT, "condition_on_attributes": False}
    model = seeded_model("joint_diffusion", config).eval()
    assert model.network.condition_embedding is None
    with torch.no_grad():
        model.network.unet.head[-1].weight.normal_(0.0, 0.05)
    model.fit_classes(torch.randn(100, 9, generator=torch.Generator().manual_seed(0)))
    noise = torch.randn(4, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    conditions = torch.randn(4, 9, generator=torch.Generator().manual_seed(2))
    same_class = conditions.clone()
    same_class[:, 1:7] += 1.0  # vertex and momenta: not part of the family
    with torch.inference_mode():
        assert torch.equal(model.generate(noise, conditions), model.generate(noise, same_class))
        model.config.representation_step = 5.0
        moved = model.generate(noise, conditions)
        model.config.representation_step = 0.0
        assert not torch.allclose(moved, model.generate(noise, conditions))


def test_save_load_generates_identically(tmp_path: Path) -> None:
    model = seeded_model("joint_diffusion", {**TINY_JOINT, "representation_step": 1.0}).eval()
    with torch.no_grad():
        model.network.unet.head[-1].weight.normal_(0.0, 0.05)
    train_particles, _ = particles_of_families(300, seed=4)
    scaler = ParticleStandardiser.fit(train_particles)
    model.fit_classes(torch.from_numpy(scaler.transform(train_particles)))
    simulator = LearnedSimulator(model, scaler, model_name="joint_diffusion")
    loaded = load_simulator(save_model_file(tmp_path / "joint.pt", simulator, seed=1))
    particles, _ = particles_of_families(10, seed=5)
    original = simulator.simulate(particles, seed=5)
    assert original.sum() > 0
    assert torch.equal(loaded.model.energy_edges, model.energy_edges)
    assert np.array_equal(loaded.simulate(particles, seed=5), original)
    assert not np.array_equal(loaded.simulate(particles, seed=6), original)
