"""Every calosim torch file carries a checksum of its contents: a flipped byte in its
weights is refused with one line, and `calosim info` shows what the file is."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from calosim.cli import cli
from calosim.data.transforms import ParticleStandardiser
from calosim.errors import ModelFileError
from calosim.models import LearnedSimulator, build_model
from calosim.training.checkpoint import (
    load_simulator,
    load_training_state,
    save_model_file,
    save_training_state,
)


@pytest.fixture
def model_file(tmp_path: Path, tiny_dataset) -> Path:
    torch.manual_seed(0)
    model = build_model("e2e_sae", {"latent_dim": 4, "encoder_hidden": [16],
                                    "decoder_hidden": [16], "noise_hidden": [8]})
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(tiny_dataset.particles),
                                 model_name="e2e_sae")
    return save_model_file(tmp_path / "model.pt", simulator, seed=4)


def _flip_a_weight_byte(path: Path) -> Path:
    """The file with one bit changed inside its first tensor record (the zip stays valid:
    torch stores records uncompressed and checks no CRC)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        record = next(info for info in archive.infolist() if "/data/" in info.filename)
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26:
                                                          record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length
    data[start + record.file_size // 2] ^= 0x10
    damaged = path.with_name("damaged.pt")
    damaged.write_bytes(bytes(data))
    return damaged


def test_a_flipped_weight_byte_is_refused(model_file: Path) -> None:
    damaged = _flip_a_weight_byte(model_file)
    with pytest.raises(ModelFileError, match=r"damaged.pt: damaged model file"):
        load_simulator(damaged)
    load_simulator(model_file)  # the intact file still loads


def test_generate_with_a_damaged_model_is_one_line(model_file: Path, tmp_path: Path,
                                                   tiny_dataset) -> None:
    from calosim.data import ZDCDataset, write_dataset

    particles = tmp_path / "particles.h5"
    write_dataset(particles, ZDCDataset(responses=None, particles=tiny_dataset.particles))
    args = ["generate", "--model", _flip_a_weight_byte(model_file), "--particles", particles,
            "--out", tmp_path / "out.h5", "--seed", "1", "--no-progress"]
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"calosim: error: {tmp_path / 'damaged.pt'}: damaged model file: its contents no "
        "longer match the checksum written with them"]
    assert not (tmp_path / "out.h5").exists()


def test_the_same_model_gives_the_same_bytes(model_file: Path, tmp_path: Path) -> None:
    again = save_model_file(tmp_path / "again.pt", load_simulator(model_file), seed=4)
    assert again.read_bytes() == model_file.read_bytes()


def test_info_shows_the_checksum_of_models_and_checkpoints(model_file: Path,
                                                           tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["info", str(model_file), "--json"])
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)
    assert model["kind"] == "model" and model["model_name"] == "e2e_sae"
    assert model["integrity"]["checksum"] == "verified"
    assert len(model["integrity"]["sha256"]) == 64
    state = save_training_state(tmp_path / "last.pt", {"model": {"w": torch.ones(3)},
                                                        "epoch": 2})
    assert load_training_state(state)["epoch"] == 2
    result = CliRunner().invoke(cli, ["info", str(state), "--json"])
    checkpoint = json.loads(result.stdout)
    assert checkpoint["kind"] == "training checkpoint"
    assert checkpoint["epoch"] == 2 and checkpoint["parameters"] == 3


def test_info_into_a_closed_pipe_says_nothing(model_file: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "calosim", "info", str(model_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.read(4)
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert stderr == b""
