from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from calosim import __version__
from calosim.data import read_dataset


def test_version_and_help(run):
    assert __version__ in run("--version").output
    for command in ("simulate", "generate", "validate", "info", "train", "bench"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_simulate_records_how_the_file_was_made(simulated):
    data = read_dataset(simulated)
    assert data.responses.shape == (3000, 44, 44)
    assert np.array_equal(data.responses, np.round(data.responses))
    with h5py.File(simulated) as f:
        assert int(f.attrs["seed"]) == 1
        assert f.attrs["simulator"] == "mc"
        assert "simulate" in f.attrs["creator"]
        assert f["channels"].shape == (3000, 5)


def test_same_seed_on_given_particles_reproduces_the_gun_run(run, simulated, tmp_path):
    again = tmp_path / "again.h5"
    other = tmp_path / "other.h5"
    assert run("simulate", "--particles", simulated, "--seed", "1", "--out", again,
               "--chunk-size", "1024").exit_code == 0
    assert run("simulate", "--particles", simulated, "--seed", "2", "--out", other).exit_code == 0
    ref, same, diff = (read_dataset(p) for p in (simulated, again, other))
    np.testing.assert_array_equal(ref.particles, same.particles)
    np.testing.assert_array_equal(ref.responses, same.responses)
    assert not np.array_equal(ref.responses, diff.responses)


def test_min_photons_keeps_only_bright_responses(run, tmp_path):
    out = tmp_path / "bright.h5"
    assert run("simulate", "--n", "500", "--seed", "3", "--min-photons", "10", "--out", out,
               "--no-progress").exit_code == 0
    sums = read_dataset(out).responses.sum(axis=(1, 2))
    assert len(sums) == 500 and sums.min() >= 10


def test_validate_prints_floor_metrics_as_json_and_writes_plots(run, simulated, tmp_path):
    floor = tmp_path / "floor.h5"
    assert run("simulate", "--particles", simulated, "--seed", "2", "--out", floor).exit_code == 0
    result = run("validate", "--reference", simulated, "--generated", floor, "--json")
    assert result.exit_code == 0
    metrics = json.loads(result.stdout)["metrics"]
    assert len(metrics["wasserstein"]["per_channel"]) == 5
    per_channel = metrics["wasserstein"]["per_channel"]
    assert metrics["wasserstein"]["mean"] == pytest.approx(np.mean(per_channel))
    assert metrics["mae"] > 0 and metrics["pooled_log_wasserstein"] > 0 and metrics["paired"]

    report = tmp_path / "report"
    result = run("validate", "--reference", simulated, "--generated", floor, "--floor", floor,
                 "--out", report)
    assert result.exit_code == 0 and "ratio" in result.stdout
    saved = json.loads((report / "metrics.json").read_text())
    # The floor compared with itself is the floor: every ratio is exactly 1.
    assert saved["metrics"]["ratio_to_floor"]["wasserstein_mean"] == pytest.approx(1.0)
    plots = {p.name for p in report.glob("*.png")}
    assert plots >= {"channels.png", "photon_sum.png", "mean_images.png"}


def test_info_describes_a_data_file(run, simulated):
    result = run("info", simulated, "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["kind"] == "data"
    assert "3000" in result.stdout


def test_bench_reports_rate_and_memory(run):
    result = run("bench", "--simulator", "mc", "--n", "2048", "--batch-size", "1024", "--json")
    figures = json.loads(result.stdout)
    assert figures["n"] == 2048 and figures["responses_per_second"] > 0
    assert figures["peak_rss_mib"] > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["simulate", "--particles", "missing.h5", "--seed", "1"], "missing.h5"),
        (["simulate", "--n", "10", "--particles", "x.h5"], "exactly one"),
        (["simulate", "--n", "10", "--simulator", "nosuch"], "nosuch"),
        (["generate", "--model", "nosuch.pt", "--particles", "p.csv"], "nosuch.pt"),
        (["bench", "--n", "10"], "exactly one"),
        (["info", "missing.h5"], "missing.h5"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_output(
    run, tmp_path, assert_one_line_error, args, needle
):
    out = tmp_path / "out.h5"
    result = run(*args, *([] if args[0] in ("bench", "info") else ["--out", out]))
    assert_one_line_error(result, needle)
    assert not out.exists()


def test_a_bad_particle_file_keeps_the_existing_output(run, tmp_path, assert_one_line_error):
    particles = tmp_path / "p.csv"
    particles.write_text("Energy,Vx,Vy,Vz,Px,Py,Pz,mass,charge\n100,0,0,0,0,0,nan,0,0\n")
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious")
    result = run("simulate", "--particles", particles, "--seed", "1", "--out", out)
    assert_one_line_error(result, "p.csv")
    assert out.read_bytes() == b"precious"


def test_validate_needs_responses(run, tmp_path, simulated, assert_one_line_error):
    particles = tmp_path / "p.csv"
    particles.write_text("Energy,Vx,Vy,Vz,Px,Py,Pz,mass,charge\n100,0,0,0,0,0,100,0,0\n")
    result = run("validate", "--reference", simulated, "--generated", particles)
    assert_one_line_error(result, "p.csv")
