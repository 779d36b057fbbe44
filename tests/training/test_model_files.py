"""Model files: save -> load round trip, and one-line ModelFileError for anything else."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import calosim
from calosim.data.transforms import ParticleStandardiser
from calosim.errors import ModelFileError
from calosim.models import LearnedSimulator, build_model
from calosim.training.checkpoint import (
    atomic_torch_save,
    data_fingerprint,
    load_simulator,
    load_training_state,
    save_model_file,
    save_training_state,
)

TINY = {"latent_dim": 3, "encoder_hidden": [16], "decoder_hidden": [8, 16], "noise_hidden": [8]}


@pytest.fixture
def simulator(tiny_dataset) -> LearnedSimulator:
    torch.manual_seed(0)
    model = build_model("e2e_sae", {**TINY, "gate": True})
    standardiser = ParticleStandardiser.fit(tiny_dataset.particles)
    return LearnedSimulator(model, standardiser, model_name="e2e_sae", rounding="stochastic")


@pytest.fixture
def model_file(tmp_path, simulator, tiny_dataset) -> Path:
    return save_model_file(tmp_path / "model.pt", simulator,
                           data_fingerprint=data_fingerprint(tiny_dataset.particles), seed=4)


def test_save_load_generates_identically(model_file, simulator, tiny_dataset) -> None:
    particles = tiny_dataset.particles[:300]
    loaded = load_simulator(model_file)
    assert np.array_equal(loaded.simulate(particles, seed=2), simulator.simulate(particles, seed=2))
    assert loaded.round_counts and loaded.rounding == "stochastic" and loaded.name == "e2e_sae"
    assert loaded.model.config == simulator.model.config
    info = loaded.describe()
    assert info["seed"] == 4
    assert info["data_fingerprint"] == data_fingerprint(tiny_dataset.particles)
    assert np.array_equal(calosim.load(model_file).simulate(particles, seed=2),
                          loaded.simulate(particles, seed=2))


def test_fingerprint_tracks_the_particle_table(tiny_dataset) -> None:
    particles = tiny_dataset.particles
    assert data_fingerprint(particles) == data_fingerprint(particles.copy())
    changed = particles.copy()
    changed[0, 0] += 1
    assert data_fingerprint(changed) != data_fingerprint(particles)
    assert data_fingerprint(particles[:-1]) != data_fingerprint(particles)


def test_no_temporary_files_are_left_behind(model_file) -> None:
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["model.pt"]


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _exploit_pickle(path: Path) -> Path:
    exploit = _Exploit()
    exploit.marker = str(path.with_suffix(".pwned"))
    with open(path, "wb") as stream:
        pickle.dump({"format": "calosim-model", "payload": exploit}, stream)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, m: d / "missing.pt", "no such file"),
        (lambda d, m: _write(d / "random.pt", np.random.default_rng(0).bytes(4096)),
         "not a calosim model file"),
        (lambda d, m: _write(d / "notes.txt", b"just some text\n"), "not a calosim model file"),
        (lambda d, m: _write(d / "empty.pt", b""), "not a calosim model file"),
        (lambda d, m: _write(d / "cut.pt", m.read_bytes()[:2000]), "not a calosim model file"),
        (lambda d, m: _exploit_pickle(d / "exploit.pt"), "not a calosim model file"),
    ],
    ids=["missing", "random-bytes", "text", "empty", "truncated", "malicious-pickle"],
)
def test_unreadable_files_raise_model_file_error(tmp_path, model_file, make, message) -> None:
    path = make(tmp_path, model_file)
    with pytest.raises(ModelFileError, match=message) as raised:
        load_simulator(path)
    text = str(raised.value)
    assert "\n" not in text and str(path) in text
    assert not list(tmp_path.glob("*.pwned"))  # the pickle's code never ran


def _resave(source: Path, target: Path, **changes) -> Path:
    payload = torch.load(source, weights_only=True)
    payload.update(changes)
    return atomic_torch_save(payload, target)  # with a checksum of the changed contents


def test_foreign_and_corrupt_torch_files(tmp_path, model_file) -> None:
    cases = {
        "tensor.pt": (lambda p: torch.save(torch.zeros(3), p), "foreign PyTorch data"),
        "dict.pt": (lambda p: torch.save({"weights": torch.zeros(3)}, p), "foreign PyTorch data"),
        "state.pt": (lambda p: save_training_state(p, {"epoch": 1}), "'calosim-training-state'"),
        "unknown.pt": (lambda p: _resave(model_file, p, model_name="diffusion9"),
                       "unknown model 'diffusion9'"),
        "shapes.pt": (lambda p: _resave(model_file, p, config={**TINY, "latent_dim": 5}),
                      "weights do not fit model 'e2e_sae'"),
        "config.pt": (lambda p: _resave(model_file, p, config={"latent_dims": 5}),
                      "unknown key model.latent_dims"),
        "future.pt": (lambda p: _resave(model_file, p, format_version=99), "newer than"),
        "nostate.pt": (lambda p: _resave(model_file, p, state_dict=None), "corrupt model file"),
    }
    for name, (write, message) in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(ModelFileError, match=message) as raised:
            load_simulator(path)
        assert "\n" not in str(raised.value) and name in str(raised.value)


def test_training_states_round_trip_with_generator_states(tmp_path) -> None:
    generator = torch.Generator().manual_seed(3)
    path = save_training_state(tmp_path / "last.pt", {
        "epoch": 2, "rng": {"shuffle": generator.get_state()}, "history": [{"val": {"w1": 1.5}}],
    })
    state = load_training_state(path)
    assert state["epoch"] == 2 and state["history"][0]["val"]["w1"] == 1.5
    restored = torch.Generator()
    restored.set_state(state["rng"]["shuffle"])
    assert torch.equal(torch.rand(3, generator=restored), torch.rand(3, generator=generator))
    with pytest.raises(ModelFileError, match="not a calosim training checkpoint"):
        load_training_state(_resave(path, tmp_path / "x.pt", format="calosim-model"))


def test_files_from_before_a_config_key_existed_keep_their_behaviour(tmp_path, tiny_dataset):
    torch.manual_seed(0)
    old = LearnedSimulator(
        build_model("e2e_sae", {**TINY, "encoder_channel_inputs": False}),
        ParticleStandardiser.fit(tiny_dataset.particles), model_name="e2e_sae",
    )
    path = save_model_file(tmp_path / "old.pt", old)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["encoder_channel_inputs"]  # as written before the key existed
    del payload["integrity"]  # and before files carried checksums
    torch.save(payload, path)
    loaded = load_simulator(path)
    assert loaded.model.config.encoder_channel_inputs is False
    particles = tiny_dataset.particles[:50]
    assert np.array_equal(loaded.simulate(particles, seed=1), old.simulate(particles, seed=1))
