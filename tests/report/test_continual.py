"""The R matrix file of a continual run and its transfer metrics, on hand-made matrices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calosim.errors import DataFormatError
from calosim.metrics.continual import (
    R_MATRIX_FILE,
    ContinualRun,
    backward_transfer,
    final_average,
    forgetting,
    forward_transfer,
    read_r_matrix,
    transfer_metrics,
    write_r_matrix,
)
from calosim.report.validation import validate_continual

# Lower is better (a Wasserstein distance). Task 0 improves while task 1 is learned
# (1.0 -> 0.8), then degrades to 1.8; task 1 goes from 2.0 to 2.5.
MATRIX = [[1.0, 5.0, 6.0], [0.8, 2.0, 5.5], [1.8, 2.5, 3.0]]
BASELINE = [7.0, 6.5, 6.2]
TASKS = ["low", "mid", "high"]


def _run(matrix=MATRIX, baseline=BASELINE, lower_is_better=True) -> ContinualRun:
    return ContinualRun(
        matrix=np.array(matrix, dtype=float), metric="w1", tasks=tuple(TASKS[: len(matrix)]),
        baseline=None if baseline is None else np.array(baseline, dtype=float),
        lower_is_better=lower_is_better,
    )


def test_transfer_metrics_of_a_lower_is_better_matrix():
    run = _run()
    assert final_average(run) == pytest.approx((1.8 + 2.5 + 3.0) / 3)
    # Improvements from just after learning to the end: 1.0 -> 1.8 and 2.0 -> 2.5.
    assert backward_transfer(run) == pytest.approx((-0.8 - 0.5) / 2)
    # Losses from the best value after learning: 0.8 -> 1.8 and 2.0 -> 2.5.
    assert forgetting(run) == pytest.approx((1.0 + 0.5) / 2)
    # Before training on a task, against the untrained baseline: 6.5 -> 5.0, 6.2 -> 5.5.
    assert forward_transfer(run) == pytest.approx((1.5 + 0.7) / 2)


def test_higher_is_better_flips_the_signs_consistently():
    lower = _run()
    higher = _run(-np.array(MATRIX), -np.array(BASELINE), lower_is_better=False)
    assert final_average(higher) == pytest.approx(-final_average(lower))
    for metric in (backward_transfer, forgetting, forward_transfer):
        assert metric(higher) == pytest.approx(metric(lower))


def test_undefined_metrics_are_none():
    single = _run([[2.0]], [5.0])
    assert final_average(single) == 2.0
    assert backward_transfer(single) is forgetting(single) is forward_transfer(single) is None
    assert forward_transfer(_run(baseline=None)) is None
    unmeasured = [[1.0, None, None], [0.8, 2.0, None], [1.8, 2.5, 3.0]]
    assert forward_transfer(_run(np.array(unmeasured, dtype=float))) is None


def test_write_and_read_round_trip_keeps_unmeasured_entries(tmp_path):
    matrix = [[1.0, None, None], [0.8, 2.0, None], [1.8, 2.5, 3.0]]
    path = write_r_matrix(tmp_path, matrix, "w1", TASKS, baseline=BASELINE)
    assert path == tmp_path / R_MATRIX_FILE
    assert json.loads(path.read_text())["matrix"][0] == [1.0, None, None]
    run = read_r_matrix(tmp_path)
    assert np.isnan(run.matrix[0, 1]) and run.matrix[2, 1] == 2.5
    assert run.tasks == tuple(TASKS) and run.lower_is_better
    assert transfer_metrics(run)["forgetting"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "payload, needle",
    [
        ("not json", "cannot read the R matrix"),
        (json.dumps([1, 2]), "expected a JSON object"),
        (json.dumps({"matrix": [[1.0]], "metric": "w1"}), "missing key(s) tasks"),
        (json.dumps({"matrix": [[1, 2]], "metric": "w", "tasks": ["a"]}), "T x T"),
        (json.dumps({"matrix": [[1, 2], [3]], "metric": "w", "tasks": ["a", "b"]}),
         "numbers or null"),
        (json.dumps({"matrix": [[1, 2], [3, 4]], "metric": "w", "tasks": ["a"]}),
         "tasks must list 2"),
        (json.dumps({"matrix": [[None, 2], [3, 4]], "metric": "w", "tasks": ["a", "b"]}),
         "diagonal and the last row"),
        (json.dumps({"matrix": [[1, 2], [3, 4]], "metric": "w", "tasks": ["a", "b"],
                     "baseline": [1]}), "baseline must hold 2"),
        (json.dumps({"matrix": [[1, 2], [3, 4]], "metric": "w", "tasks": ["a", "b"],
                     "lower_is_better": "yes"}), "lower_is_better"),
    ],
)
def test_bad_r_matrix_files_name_the_file(tmp_path, payload, needle):
    (tmp_path / R_MATRIX_FILE).write_text(payload)
    with pytest.raises(DataFormatError, match="r_matrix.json") as error:
        read_r_matrix(tmp_path)
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_missing_file_and_bad_writes(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_r_matrix(tmp_path)
    with pytest.raises(DataFormatError, match="tasks must list"):
        write_r_matrix(tmp_path, MATRIX, "w1", ["only one"])
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_validate_continual_reports_the_transfer_metrics(tmp_path):
    write_r_matrix(tmp_path, MATRIX, "w1", TASKS, baseline=BASELINE)
    out = tmp_path / "report"
    result = validate_continual(tmp_path, out)
    assert result["transfer"]["backward_transfer"] == pytest.approx(-0.65)
    assert result["matrix"] == MATRIX and result["baseline"] == BASELINE
    assert json.loads((out / "metrics.json").read_text()) == result
    page = (out / "report.html").read_text()
    assert "forward transfer" in page and "after mid" in page and "on high" in page


def test_validate_continual_shows_the_ratio_to_the_floor(tmp_path):
    write_r_matrix(tmp_path, MATRIX, "w1", TASKS, baseline=BASELINE)
    floors = np.array([0.5, 2.0, 4.0])
    ratio = (np.array(MATRIX, dtype=float) / floors[None, :]).tolist()
    write_r_matrix(tmp_path / "w1_ratio", ratio, "w1_ratio", TASKS,
                   baseline=(np.array(BASELINE) / floors).tolist())
    out = tmp_path / "report"
    result = validate_continual(tmp_path, out)
    np.testing.assert_allclose(result["ratio"]["matrix"], ratio)
    assert result["ratio"]["transfer"]["final_average"] == pytest.approx(np.mean(ratio[-1]))
    assert len(result["plots"]) == 2 and all(Path(p).is_file() for p in result["plots"])
    page = (out / "report.html").read_text()
    assert "R matrix / noise floor" in page and "second Monte Carlo simulation" in page
    assert "ratio" not in validate_continual(tmp_path / "w1_ratio")  # a floor has no floor
