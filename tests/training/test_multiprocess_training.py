"""Two CPU processes under torchrun (gloo): replicas stay identical, rank 0 writes a
loadable model, a resumed run continues exactly, a GAN trains too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import calosim
from calosim.data.dataset import write_dataset
from calosim.errors import CalosimError
from calosim.training.distributed import SINGLE, Context, context_from_environment

WORKER = Path(__file__).with_name("distributed_worker.py")


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory, tiny_dataset) -> Path:
    out = tmp_path_factory.mktemp("distributed")
    data = out / "data.h5"
    write_dataset(data, tiny_dataset)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        environment.pop(name, None)
    finished = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), str(data), str(out)],
        env=environment, capture_output=True, text=True, timeout=240,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return out


def replicas(out: Path, run: str) -> list[dict[str, torch.Tensor]]:
    return [torch.load(out / f"{run}.rank{rank}.pt") for rank in (0, 1)]


@pytest.mark.parametrize("run", ["sae", "resumed", "gan"])
def test_replicas_end_identical(two_process_runs: Path, run: str) -> None:
    first, second = replicas(two_process_runs, run)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_rank_zero_writes_a_loadable_model_and_one_log(two_process_runs: Path,
                                                         tiny_dataset) -> None:
    run = two_process_runs / "sae"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(record["epoch"], record.get("phase")) for record in history][:2] == [
        (1, None), (2, None)]
    assert history[2]["phase"] == "refine" and len(history) == 3
    assert len((run / "train.log").read_text().splitlines()) == 3
    assert json.loads((run / "metrics.json").read_text())["test"]["n"] == 50
    responses = calosim.load(run / "model.pt").simulate(tiny_dataset.particles[:10], seed=1)
    assert responses.shape == (10, 44, 44) and np.all(responses >= 0)


def test_resumed_run_continues_to_the_uninterrupted_weights(two_process_runs: Path) -> None:
    straight, _ = replicas(two_process_runs, "sae")
    resumed, _ = replicas(two_process_runs, "resumed")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_shards_of_a_batch_are_disjoint_and_complete() -> None:
    rows = np.arange(11)
    shards = [Context(rank, 3, rank).shard(rows) for rank in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == rows.tolist()
    assert [len(shard) for shard in shards] == [4, 4, 3]
    assert SINGLE.shard(rows).tolist() == rows.tolist()


def test_environment_without_torchrun_is_a_single_process(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert context_from_environment("cpu") == SINGLE


@pytest.mark.parametrize(("variables", "message"), [
    ({"WORLD_SIZE": "2", "RANK": "two"}, "RANK='two'"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "outside WORLD_SIZE=2"),
    ({"WORLD_SIZE": "many"}, "WORLD_SIZE='many'"),
])
def test_bad_torchrun_environment_raises_one_line(monkeypatch, variables, message) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CalosimError, match=message):
        context_from_environment("cpu")
