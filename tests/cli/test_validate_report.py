"""`calosim validate`: several models in one HTML report, --json as before, --continual."""

from __future__ import annotations

import json

import pytest

from calosim.metrics.continual import write_r_matrix


@pytest.fixture(scope="module")
def second_simulations(simulated, tmp_path_factory):
    """Two more simulations of the particles of `simulated`: (floor, model)."""
    from click.testing import CliRunner

    from calosim.cli import cli

    directory = tmp_path_factory.mktemp("second")
    paths = []
    for seed, name in ((2, "floor.h5"), (3, "model.h5")):
        out = directory / name
        result = CliRunner().invoke(cli, ["simulate", "--particles", str(simulated), "--seed",
                                          str(seed), "--out", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        paths.append(out)
    return tuple(paths)


def test_two_models_in_one_report(run, simulated, second_simulations, tmp_path):
    floor, model = second_simulations
    out = tmp_path / "report"
    result = run("validate", "--reference", simulated, "--generated", model, "--generated",
                 floor, "--label", "model A", "--label", "model B", "--floor", floor,
                 "--energy-bins", "3", "--out", out)
    assert result.exit_code == 0, result.output
    assert "== model A" in result.stdout and "== model B" in result.stdout
    assert "report.html" in result.stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert [m["label"] for m in saved["models"]] == ["model A", "model B"]
    assert saved["metrics"] == saved["models"][0]["metrics"]
    assert len(saved["models"][0]["energy_bins"]) == 3
    # model B is the floor file itself: every ratio to the floor is 1.
    assert saved["models"][1]["metrics"]["ratio_to_floor"]["wasserstein_mean"] == 1.0
    page = (out / "report.html").read_text()
    assert "model A" in page and "model B" in page and page.count("<img ") == 7


def test_one_generated_file_keeps_the_json_layout(run, simulated, second_simulations):
    floor, model = second_simulations
    result = run("validate", "--reference", simulated, "--generated", model, "--floor", floor,
                 "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed["generated"] == str(model)
    assert printed["metrics"]["paired"] and printed["metrics"]["mae"] > 0
    assert printed["floor"]["wasserstein"]["mean"] > 0
    assert [m["label"] for m in printed["models"]] == ["mc"]  # the simulator attribute


def test_continual_run_report(run, tmp_path):
    write_r_matrix(tmp_path, [[1.0, 4.0], [1.5, 2.0]], "wasserstein_mean", ["low", "high"],
                   baseline=[5.0, 5.0])
    out = tmp_path / "report"
    result = run("validate", "--continual", tmp_path, "--out", out)
    assert result.exit_code == 0, result.output
    assert "backward_transfer" in result.stdout and "-0.5" in result.stdout
    assert (out / "report.html").is_file() and (out / "r_matrix.png").is_file()
    printed = json.loads(run("validate", "--continual", tmp_path, "--json").stdout)
    assert printed["transfer"]["forward_transfer"] == pytest.approx(1.0)


def test_bad_requests_are_one_line_errors(run, simulated, tmp_path, assert_one_line_error):
    (tmp_path / "r_matrix.json").write_text("{broken")
    cases = [
        (["--continual", tmp_path, "--reference", simulated], "--continual takes no"),
        (["--reference", simulated], "at least one --generated"),
        (["--reference", simulated, "--generated", simulated, "--label", "a", "--label", "b"],
         "2 labels for 1 generated"),
        (["--continual", tmp_path], "r_matrix.json"),
        (["--continual", tmp_path / "nowhere"], "no such file"),
    ]
    for args, needle in cases:
        assert_one_line_error(run("validate", *args), needle)
