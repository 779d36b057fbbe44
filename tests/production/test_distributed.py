"""Shards on a Dask LocalCluster of 2 worker processes: the union is the unsharded run."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from calosim.errors import ModelFileError
from calosim.production import distributed
from calosim.production.distributed import dask_client, dask_producer
from calosim.production.shards import (
    local_producer,
    merge_shards,
    prepare_run,
    read_manifest,
    run_sharded,
)
from calosim.production.stream import simulate_rows
from calosim.simulators.loading import load

KEYS = ("particles", "pdg", "responses", "channels")


def read_h5(*paths):
    with_parts = {key: [] for key in KEYS}
    for path in paths:
        with h5py.File(path, "r") as file:
            for key in KEYS:
                with_parts[key].append(file[key][:])
    return {key: np.concatenate(parts) for key, parts in with_parts.items()}


@pytest.fixture(scope="module")
def client():
    """One local cluster for the module: 2 processes, 1 thread each, closed afterwards."""
    with dask_client(workers=2) as dask:
        yield dask


def test_local_cluster_has_two_single_threaded_processes(client):
    workers = client.scheduler_info()["workers"].values()
    assert len(workers) == 2
    assert all(worker["nthreads"] == 1 for worker in workers)
    assert len({worker["host"] + str(worker["id"]) for worker in workers}) == 2


def test_dask_shards_union_equals_the_unsharded_run(client, tmp_path, particle_file):
    # The Monte Carlo keeps the workers light (no torch import); any simulator runs the
    # same way: workers load it by name or file once per process.
    simulator = load("mc")
    reference = tmp_path / "plain.h5"
    simulate_rows(simulator, particle_file, reference, seed=9, n_per_particle=2,
                  progress=False)
    plan = prepare_run("mc", particle_file, tmp_path / "run.h5", simulator=simulator, seed=9,
                       n_shards=3, n_per_particle=2)
    # shard 0 was done earlier (a killed run): the cluster makes only the others
    run_sharded(plan, producer=local_producer(simulator, progress=False), indices=[0],
                progress=False)
    producer = dask_producer(client, torch_threads=1, progress=False)
    summary = run_sharded(plan, producer=producer, merge=False, progress=False)
    assert summary.produced == (1, 2) and summary.skipped == (0,)
    assert sorted(read_manifest(plan.manifest)["shards"]) == ["0", "1", "2"]

    expected = read_h5(reference)
    union = read_h5(*(plan.shard_file(i) for i in range(3)))
    merge_shards(plan, progress=False)
    merged = read_h5(plan.out)
    for key in KEYS:
        np.testing.assert_array_equal(union[key], expected[key], err_msg=key)
        np.testing.assert_array_equal(merged[key], expected[key], err_msg=key)


def test_a_failing_shard_stops_the_run_with_its_one_line_error(client, tmp_path, model_file,
                                                               particle_file):
    simulator = load(model_file)
    plan = prepare_run(str(model_file), particle_file, tmp_path / "run.h5",
                       simulator=simulator, seed=9, n_shards=2)
    broken = replace(plan, model=str(tmp_path / "gone.pt"))  # workers cannot load it
    with pytest.raises(ModelFileError, match="gone.pt: no such model file") as info:
        run_sharded(broken, producer=dask_producer(client, progress=False), progress=False)
    assert "\n" not in str(info.value)
    assert read_manifest(plan.manifest)["shards"] == {}
    assert not plan.out.exists()


def test_generate_command_on_a_running_scheduler(client, tmp_path, particle_file,
                                                monkeypatch):
    from click.testing import CliRunner

    from calosim.cli import cli

    runner = CliRunner()
    common = ["generate", "--model", "mc", "--particles", str(particle_file), "--seed", "3",
              "--no-progress"]
    plain = runner.invoke(cli, [*common, "--out", str(tmp_path / "plain.h5")])
    assert plain.exit_code == 0, plain.output
    out = tmp_path / "dask.h5"
    result = runner.invoke(cli, [*common, "--out", str(out), "--shards", "2",
                                 "--scheduler", client.scheduler.address])
    assert result.exit_code == 0, result.output
    assert "2 of 2 shard(s) produced" in result.stdout and f"merged into {out}" in result.stdout
    expected, merged = read_h5(tmp_path / "plain.h5"), read_h5(out)
    for key in KEYS:
        np.testing.assert_array_equal(merged[key], expected[key], err_msg=key)

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    unreachable = runner.invoke(cli, [*common, "--out", str(tmp_path / "x.h5"), "--scheduler",
                                      "tcp://127.0.0.1:9", "--shards", "2"])
    assert unreachable.exit_code == 1
    assert unreachable.stderr.startswith("calosim: error: cannot reach the Dask scheduler")
    assert len(unreachable.stderr.strip().splitlines()) == 1
