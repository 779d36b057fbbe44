"""`calosim generate` in batch production: array-job shards, resume, Dask, K per particle."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

KEYS = ("particles", "pdg", "responses", "channels")


def read_h5(path):
    with h5py.File(path, "r") as file:
        return {key: file[key][:] for key in KEYS}


def assert_same(a, b):
    for key in KEYS:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, simulated):
    """The unsharded reference run, K = 1 and K = 2, through the CLI."""
    from click.testing import CliRunner

    from calosim.cli import cli

    directory = tmp_path_factory.mktemp("plain")
    runs = {}
    for k in (1, 2):
        out = directory / f"k{k}.h5"
        result = CliRunner().invoke(cli, ["generate", "--model", "mc", "--particles",
                                          str(simulated), "--out", str(out), "--seed", "4",
                                          "--n-per-particle", str(k), "--no-progress"])
        assert result.exit_code == 0, result.output
        runs[k] = read_h5(out)
    return runs


@pytest.mark.parametrize("shard, needle", [
    ("3/2", "shard '3/2': the shard index I must lie in 0..1"),
    ("0/0", "shard '0/0': the number of shards N must be at least 1"),
    ("x", "shard 'x': expected I/N"),
])
def test_bad_shard_syntax_is_a_one_line_error(run, assert_one_line_error, simulated, tmp_path,
                                              shard, needle):
    result = run("generate", "--model", "mc", "--particles", simulated, "--out",
                 tmp_path / "out.h5", "--seed", "1", "--shard", shard)
    assert_one_line_error(result, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, needle", [
    (["--shard", "0/2"], "--seed"),
    (["--shard", "0/2", "--seed", "1", "--dask"], "give one or the other"),
    (["--seed", "1", "--no-merge"], "--no-merge applies to sharded runs"),
    (["--seed", "1", "--shards", "2", "--workers", "2"], "it needs --dask"),
    (["--seed", "1", "--shards", "2", "--out-format-check"], "No such option"),
])
def test_inconsistent_options_are_one_line_errors(run, simulated, tmp_path, options, needle):
    result = run("generate", "--model", "mc", "--particles", simulated,
                 "--out", tmp_path / "out.h5", *options)
    assert result.exit_code != 0
    assert needle in result.stderr
    if "No such option" not in needle:
        assert len(result.stderr.strip().splitlines()) == 1


def test_array_jobs_then_merge_equal_the_plain_run(run, simulated, tmp_path, plain):
    out = tmp_path / "run.h5"
    common = ("generate", "--model", "mc", "--particles", simulated, "--out", out,
              "--no-progress")
    for index in (2, 0, 1):  # batch array tasks finish in any order
        result = run(*common, "--seed", "4", "--shard", f"{index}/3")
        assert result.exit_code == 0, result.output
        assert f"shard-{index:04d}-of-0003.h5" in " ".join(p.name for p in tmp_path.iterdir())
    assert not out.exists()

    # a damaged shard is found and redone when the run is completed (seed from the manifest)
    shard = tmp_path / "run.shard-0001-of-0003.h5"
    shard.write_bytes(shard.read_bytes()[:1000])
    result = run(*common, "--shards", "3")
    assert result.exit_code == 0, result.output
    assert "shard 1/3 redone" in result.stderr and "truncated" in result.stderr
    assert "1 of 3 shard(s) produced" in result.stdout and "2 already done" in result.stdout
    assert_same(read_h5(out), plain[1])
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert visible == ["run.h5", "run.h5.manifest.json"]  # shards removed once merged

    again = run(*common, "--shards", "3")
    assert "0 of 3 shard(s) produced" in again.stdout
    assert_same(read_h5(out), plain[1])


def test_another_seed_on_the_same_output_is_refused(run, assert_one_line_error, simulated,
                                                    tmp_path):
    common = ("generate", "--model", "mc", "--particles", simulated, "--out",
              tmp_path / "run.h5", "--no-progress", "--shard", "0/2")
    assert run(*common, "--seed", "4").exit_code == 0
    assert_one_line_error(run(*common, "--seed", "5"), "seed 4 (now 5)", "--restart")
    assert run(*common, "--seed", "5", "--restart").exit_code == 0


def test_several_responses_per_particle_are_shard_invariant(run, simulated, tmp_path, plain):
    out = tmp_path / "k2.h5"
    result = run("generate", "--model", "mc", "--particles", simulated, "--out", out,
                 "--seed", "4", "--n-per-particle", "2", "--shards", "3", "--no-merge",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert "shards listed in" in result.stdout and not out.exists()
    union = [read_h5(tmp_path / f"k2.shard-{i:04d}-of-0003.h5") for i in range(3)]
    assert_same({key: np.concatenate([u[key] for u in union]) for key in KEYS}, plain[2])
    np.testing.assert_array_equal(plain[2]["particles"][::2], plain[1]["particles"])
    np.testing.assert_array_equal(plain[2]["particles"][1::2], plain[1]["particles"])
    with h5py.File(tmp_path / "k2.shard-0001-of-0003.h5") as file:
        assert int(file.attrs["n_per_particle"]) == 2 and file.attrs["shard"] == "1/3"


def test_threads_option_sets_torch_threads_of_a_plain_run(run, simulated, tmp_path, plain):
    import torch

    before = torch.get_num_threads()
    try:
        result = run("generate", "--model", "mc", "--particles", simulated, "--out",
                     tmp_path / "t.h5", "--seed", "4", "--threads", "1", "--no-progress")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert_same(read_h5(tmp_path / "t.h5"), plain[1])
