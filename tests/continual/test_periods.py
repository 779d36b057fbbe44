"""Period-by-period retraining from the CLI: one command per period, the benchmark's R
matrix, no earlier period's file ever needed, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from continual_helpers import tiny_config, toy_dataset

import calosim
from calosim.cli import cli
from calosim.continual.run import train_continual_from_config
from calosim.data import write_dataset


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("periods") / "toy.h5"
    write_dataset(path, toy_dataset(400, seed=4))
    return path


def _config(tmp_path: Path, strategy: str) -> Path:
    path = tmp_path / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(tiny_config(strategy, n_tasks=3)))
    return path


def _matrix(run: Path) -> tuple[np.ndarray, np.ndarray]:
    payload = json.loads((run / "r_matrix.json").read_text())
    return (np.array(payload["matrix"], dtype=float), np.array(payload["baseline"], dtype=float))


@pytest.mark.parametrize("strategy", ["generative_replay", "multiband"])
def test_periods_one_command_each_give_the_benchmark_r_matrix(toy_file, tmp_path,
                                                               strategy) -> None:
    config = _config(tmp_path, strategy)
    benchmark = train_continual_from_config(config, data=toy_file, out_dir=tmp_path / "bench",
                                            progress=False)
    split = _invoke("split", toy_file, "--energy-tasks", "3", "--out-dir", tmp_path / "p")
    assert split.exit_code == 0, split.output
    run = tmp_path / "run"
    for period in (1, 2, 3):
        path = tmp_path / "p" / f"period_{period}.h5"
        result = _invoke("train", config, "--data", path, "--out", run, "--new-period",
                         "--no-progress")
        assert result.exit_code == 0, result.output
        assert f"({period} periods)" in result.output
        path.unlink()  # a later period must not need an earlier period's file
        matrix, baseline = _matrix(run)
        assert matrix.shape == (period, period)
    expected, expected_baseline = _matrix(benchmark.run_dir)
    known = np.tri(3, k=1, dtype=bool)  # R[i, j] for j <= i + 1: a period not yet seen is not
    np.testing.assert_array_equal(matrix[known], expected[known])
    assert np.isnan(matrix[~known]).all()
    np.testing.assert_array_equal(baseline, expected_baseline)
    periods = json.loads((run / "periods.json").read_text())
    assert [p["n_test"] for p in periods] == [t["n_test"] for t in benchmark.metrics["scenario"]]
    responses = calosim.load(run / "model.pt").simulate(toy_dataset(5, seed=1).particles, seed=3)
    assert responses.shape == (5, 44, 44)


def test_new_period_refuses_what_it_cannot_do(toy_file, tmp_path) -> None:
    config = _config(tmp_path, "naive")
    run = tmp_path / "run"
    assert _invoke("train", config, "--data", toy_file, "--out", run, "--new-period",
                   "--no-progress").exit_code == 0
    cases = [
        (["--data", toy_file, "--out", run], "holds the data of period 1"),
        (["--out", run], "needs --data"),
        (["--data", toy_file, "--out", run, "--resume"], "takes no --resume"),
        (["--data", toy_file, "--out", run, "training.epochs=3"], "different config"),
    ]
    for arguments, message in cases:
        result = _invoke("train", config, *arguments, "--new-period", "--no-progress")
        assert result.exit_code != 0 and message in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    benchmark = tmp_path / "bench"
    assert _invoke("train", config, "--data", toy_file, "--out", benchmark,
                   "--no-progress").exit_code == 0
    result = _invoke("train", config, "--data", toy_file, "--out", benchmark, "--new-period")
    assert result.exit_code != 0 and "not of periods" in result.stderr
