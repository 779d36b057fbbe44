from __future__ import annotations

import numpy as np

from calosim.data import read_dataset, split_indices


def test_split_writes_the_trainers_parts(run, simulated, tmp_path):
    result = run("split", simulated, "--out-dir", tmp_path, "--seed", "0")
    assert result.exit_code == 0, result.output
    full = read_dataset(simulated)
    expected = split_indices(len(full), 0, (0.8, 0.1, 0.1))
    seen = []
    for name in ("train", "val", "test"):
        part = read_dataset(tmp_path / f"{name}.h5")
        rows = np.sort(expected[name])
        np.testing.assert_array_equal(part.particles, full.particles[rows])
        np.testing.assert_array_equal(part.responses, full.responses[rows])
        assert part.attrs["split_part"] == name
        assert "split" in part.attrs["creator"]
        seen.append(rows)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(len(full)))


def test_split_of_a_missing_file_is_one_line(run, tmp_path, assert_one_line_error):
    result = run("split", tmp_path / "none.h5", "--out-dir", tmp_path / "out")
    assert_one_line_error(result, "none.h5")
    assert not (tmp_path / "out" / "test.h5").exists()


def test_split_of_a_run_needs_its_split_file(run, simulated, tmp_path, assert_one_line_error):
    result = run("split", simulated, "--out-dir", tmp_path / "out", "--run", tmp_path)
    assert_one_line_error(result, "split.npz")
