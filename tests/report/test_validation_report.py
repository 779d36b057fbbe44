"""validate_files: several models beside the floor, breakdowns, files written atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calosim.data import ZDCDataset, read_dataset, write_dataset
from calosim.errors import CalosimError
from calosim.metrics import wasserstein_by_energy_bin, zdc_metrics
from calosim.report.html import HtmlPage
from calosim.report.validation import (
    FAMILIES,
    METRICS_JSON,
    REPORT_HTML,
    format_table,
    particle_families,
    validate_files,
)

PNG_NAMES = {
    "channels.png", "photon_sum.png", "mean_images.png", "single_responses.png",
    "centroid_residuals.png", "energy_bins.png", "families.png",
}


def test_models_are_labelled_and_the_first_keeps_the_old_keys(report):
    result, _ = report
    # Both files say simulator "toy": the stems keep the labels apart.
    assert [m["label"] for m in result["models"]] == ["toy (model)", "toy (other)"]
    assert result["metrics"] is result["models"][0]["metrics"]
    assert result["floor"]["paired"] and "ratio_to_floor" not in result["floor"]
    paired, unpaired = (m["metrics"] for m in result["models"])
    assert paired["paired"] and paired["mae"] > 0 and "mae" in paired["ratio_to_floor"]
    assert not unpaired["paired"] and "mae" not in unpaired
    assert "mae" not in unpaired["ratio_to_floor"]


def test_metrics_equal_zdc_metrics(report, response_files):
    result, _ = report
    reference, model = read_dataset(response_files.reference), read_dataset(response_files.model)
    expected = zdc_metrics(reference.responses, model.responses, floor=result["floor"])
    shown = {k: v for k, v in result["metrics"].items() if k != "paired"}
    assert json.loads(json.dumps(expected)) == json.loads(json.dumps(shown))


def test_energy_bins_match_the_metric_library_for_paired_sets(report, response_files):
    result, _ = report
    rows = result["models"][0]["energy_bins"]
    assert len(rows) == 5
    edges = [rows[0]["energy_low"]] + [r["energy_high"] for r in rows]
    reference, model = read_dataset(response_files.reference), read_dataset(response_files.model)
    expected = wasserstein_by_energy_bin(
        reference.responses, model.responses, reference.particles, edges
    )
    for row, want in zip(rows, expected, strict=True):
        assert row["n_reference"] == row["n_generated"] == want["n"]
        assert row["wasserstein_mean"] == pytest.approx(want["wasserstein_mean"])
        assert row["mae"] == pytest.approx(want["mae"])
    # Equal-population bins of the reference; the unpaired set is binned by its own energies.
    assert sum(r["n_reference"] for r in rows) == len(reference)
    other_rows = result["models"][1]["energy_bins"]
    assert sum(r["n_generated"] for r in other_rows) == len(read_dataset(response_files.other))
    assert all(r["mae"] is None for r in other_rows)


def test_breakdown_rows_carry_ratios_to_the_floor(report):
    result, _ = report
    floor_rows = result["floor_breakdown"]["families"]
    for row, base in zip(result["models"][0]["families"], floor_rows, strict=True):
        if base["wasserstein_mean"]:
            assert row["ratio_to_floor"]["wasserstein_mean"] == pytest.approx(
                row["wasserstein_mean"] / base["wasserstein_mean"])
    assert [r["family"] for r in floor_rows] == list(FAMILIES)
    assert "ratio_to_floor" not in floor_rows[0]


def test_family_counts_follow_the_pdg_ids(report, response_files):
    result, _ = report
    pdg = read_dataset(response_files.reference).pdg
    counts = {r["family"]: r["n_reference"] for r in result["models"][0]["families"]}
    assert counts["photon/electron"] == np.isin(pdg, [22, 11, -11]).sum()
    assert counts["neutral hadron"] == np.isin(pdg, [2112, 3122, 130]).sum()
    assert sum(counts.values()) == len(pdg)


def test_particle_families_from_pdg_or_mass_and_charge():
    #                 Energy Vx Vy Vz Px Py Pz mass charge
    particles = np.array([
        [100, 0, 0, 0, 0, 0, 100, 0.0, 0],  # photon
        [100, 0, 0, 0, 0, 0, 100, 0.511, -1],  # electron
        [100, 0, 0, 0, 0, 0, 100, 939.6, 0],  # neutron
        [100, 0, 0, 0, 0, 0, 100, 938.3, 1],  # proton
        [100, 0, 0, 0, 0, 0, 100, 105.7, -1],  # muon
    ], dtype=np.float32)
    assert particle_families(particles).tolist() == [0, 0, 1, 2, 2]
    pdg = np.array([22, 11, 2112, 2212, 13])
    assert particle_families(particles, pdg).tolist() == [0, 0, 1, 2, 3]


def test_outputs_are_complete_and_match_the_result(report):
    result, out = report
    saved = json.loads((out / METRICS_JSON).read_text())
    assert saved == json.loads(json.dumps(result))
    assert {p.split("/")[-1] for p in result["plots"]} == PNG_NAMES
    names = {p.name for p in out.iterdir()}
    assert names == PNG_NAMES | {METRICS_JSON, REPORT_HTML}  # no temporary files left
    page = (out / REPORT_HTML).read_text()
    assert page.count("<img ") == len(PNG_NAMES)
    assert "toy (other)" in page and "x floor" in page


def _aimed_file(path, x_cm, y_cm, row_shift=0):
    """Neutral particles flying straight to (x, y) on the face, each lighting one fibre."""
    n = len(x_cm)
    particles = np.zeros((n, 9), dtype=np.float32)
    particles[:, 0] = particles[:, 6] = 1000.0  # Energy, Pz: straight along the axis
    particles[:, 1], particles[:, 2] = x_cm, y_cm  # the vertex is the impact point
    particles[:, 7] = 939.6
    responses = np.zeros((n, 44, 44), dtype=np.float32)
    rows = np.clip(np.round(np.asarray(x_cm) / 0.16 + 21.5).astype(int) + row_shift, 0, 43)
    columns = np.clip(np.round(np.asarray(y_cm) / 0.16 + 21.5).astype(int), 0, 43)
    responses[np.arange(n), rows, columns] = 50.0
    responses[0] = 0.0  # an empty response does not enter the residuals
    write_dataset(path, ZDCDataset(responses, particles))
    return path


def test_centroid_residuals_measure_a_shift_of_the_shower(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.uniform(-2.5, 2.5, 300)
    y = rng.uniform(-2.5, 2.5, 300)
    x[1] = 9.0  # misses the face: left out although its response is not empty
    reference = _aimed_file(tmp_path / "ref.h5", x, y)
    shifted = _aimed_file(tmp_path / "shifted.h5", x, y, row_shift=3)
    result = validate_files(reference, shifted)
    ref_stats = result["reference_details"]["centroid_residuals"]
    assert ref_stats["n"] == 298
    assert np.abs(ref_stats["mean_cm"]).max() < 0.02  # within a fibre, unbiased
    model = result["models"][0]["centroid_residuals"]
    assert model["mean_cm"][0] == pytest.approx(ref_stats["mean_cm"][0] + 0.48, abs=1e-4)
    assert model["wasserstein_cm"][0] == pytest.approx(0.48, abs=1e-4)
    assert model["wasserstein_cm"][1] == pytest.approx(0.0, abs=1e-9)


def test_format_table_has_a_block_per_model(report):
    result, _ = report
    text = format_table(result)
    assert "== toy (model)" in text and "== toy (other)" in text
    assert text.count("W1 mean") == 2


def test_a_failed_page_keeps_the_previous_report(tmp_path, monkeypatch):
    page = HtmlPage("report")
    page.paragraph("first version")
    path = page.write(tmp_path / REPORT_HTML)
    assert "first version" in path.read_text()

    def broken(self):
        raise RuntimeError("render failed")

    monkeypatch.setattr(HtmlPage, "render", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        HtmlPage("report").write(path)
    assert "first version" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [REPORT_HTML]  # no temporary file left


def test_bad_requests_raise_one_line_calosim_errors(response_files, tmp_path):
    with pytest.raises(CalosimError, match="2 labels for 1 generated"):
        validate_files(response_files.reference, response_files.model, labels=["a", "b"])
    with pytest.raises(CalosimError, match="energy bins"):
        validate_files(response_files.reference, response_files.model, energy_bins=0)
    with pytest.raises(CalosimError, match="missing.h5"):
        validate_files(response_files.reference, [response_files.model, tmp_path / "missing.h5"])
