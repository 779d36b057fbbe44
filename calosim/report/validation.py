"""A validation campaign: generated files (models) against a reference, beside the floor.

The floor is a second, independent full simulation of the reference particles: the
metrics between the two full simulations are the best any model can reach, so every
metric of a model is read beside it (as a ratio). Besides the overall ZN metrics
(calosim.metrics.zdc_metrics), the campaign breaks the comparison down by particle
energy and particle family, and compares shower centroids with the impact point of the
Monte Carlo transport. With an output directory it writes metrics.json, the PNGs and a
self-contained report.html.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calosim.data import ATTR_SIMULATOR, ZDCDataset, pdg_name, read_dataset
from calosim.data.formats import atomic_output
from calosim.errors import CalosimError
from calosim.metrics import ResponseSummary, channel_mask, summarize_responses, wasserstein_1d
from calosim.metrics.zdc import mae_of_channels, metrics_from_summaries, wasserstein_of_channels

FAMILIES = ("photon/electron", "neutral hadron", "charged hadron", "other")
DEFAULT_ENERGY_BINS = 5
METRICS_JSON = "metrics.json"
REPORT_HTML = "report.html"
REFERENCE_LABEL = "reference"
FLOOR_LABEL = "floor (2nd simulation)"
# Photons and electrons shower electromagnetically (as in the Monte Carlo: mass < 1 MeV).
_EM_MASS_LIMIT_MEV = 1.0
_EM_PDG = {22, 11, -11}
_LEPTON_PDG = {13, 12, 14, 16}  # muons and neutrinos: neither EM showers nor hadrons
_MASS, _CHARGE = 7, 8


@dataclass(frozen=True)
class ResponseFile:
    """A data file read for validation: its responses and particles, labelled."""

    path: Path
    label: str
    data: ZDCDataset
    summary: ResponseSummary


def validate_files(
    reference: str | os.PathLike[str],
    generated: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    floor: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    parity: str = "odd",
    labels: Sequence[str] | None = None,
    energy_bins: int = DEFAULT_ENERGY_BINS,
) -> dict[str, Any]:
    """Metrics of each ``generated`` file against ``reference`` (and of ``floor`` against it).

    ``generated``: one path or several (models compared in one report). ``labels`` name
    them (default: the file's ``simulator`` attribute, else its stem). Returns a
    JSON-ready dict: "metrics" (first generated file) and "floor" (zdc_metrics layout,
    plus "paired"), "models" (per file: label, file, metrics, energy_bins, families,
    centroid_residuals), "floor_breakdown", "reference_details". With ``out_dir``,
    writes metrics.json, the PNGs and report.html there.
    """
    generated_paths = _as_path_list(generated)
    if not generated_paths:
        raise CalosimError("validation needs at least one generated file")
    if labels is not None and len(labels) != len(generated_paths):
        raise CalosimError(f"got {len(labels)} labels for {len(generated_paths)} generated "
                           "files; give one --label per --generated")
    if energy_bins < 1:
        raise CalosimError(f"energy bins: need at least 1, got {energy_bins}")
    mask = channel_mask(parity)
    ref = read_response_file(reference, REFERENCE_LABEL, mask)
    models = [read_response_file(p, "", mask) for p in generated_paths]
    models = _with_labels(models, labels)
    floor_file = None if floor is None else read_response_file(floor, FLOOR_LABEL, mask)

    result: dict[str, Any] = {"reference": str(ref.path), "generated": str(models[0].path)}
    floor_metrics = None
    if floor_file is not None:
        floor_metrics = _metrics(ref, floor_file, None)
        result["floor_file"] = str(floor_file.path)
        result["floor"] = floor_metrics
    breakdown = _Breakdown(ref, energy_bins)
    floor_details = None if floor_file is None else breakdown.compare(floor_file, None)
    result["models"] = [
        {"label": m.label, "file": str(m.path), "metrics": _metrics(ref, m, floor_metrics),
         **breakdown.compare(m, floor_details)}
        for m in models
    ]
    result["metrics"] = result["models"][0]["metrics"]
    if floor_details is not None:
        result["floor_breakdown"] = {"label": FLOOR_LABEL, "file": str(floor_file.path),
                                     **floor_details}
    result["reference_details"] = {
        "label": REFERENCE_LABEL, "n": len(ref.data),
        "empty_fraction": float(np.mean(ref.summary.lit_pixels == 0)),
        "centroid_residuals": breakdown.reference_residual_stats(),
    }
    if out_dir is not None:
        _write_report(result, [ref, *([] if floor_file is None else [floor_file]), *models],
                      floor_file is not None, out_dir)
    return result


def read_response_file(
    path: str | os.PathLike[str], label: str, mask: np.ndarray
) -> ResponseFile:
    """Read a data file that must hold responses, and summarise them in one pass."""
    path = Path(path)
    data = read_dataset(path)
    if data.responses is None:
        raise CalosimError(f"{path}: holds particles only; validation needs responses")
    return ResponseFile(path, label, data, summarize_responses(data.responses, mask, str(path)))


def _as_path_list(paths: Any) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _with_labels(models: list[ResponseFile], labels: Sequence[str] | None) -> list[ResponseFile]:
    """Give each model its label: as given, else the file's simulator or stem, made unique."""
    if labels is not None:
        names = [str(label) for label in labels]
    else:
        names = [str(m.data.attrs.get(ATTR_SIMULATOR) or m.path.stem) for m in models]
        names = [
            f"{name} ({m.path.stem})" if names.count(name) > 1 and name != m.path.stem else name
            for name, m in zip(names, models, strict=True)
        ]
    unique = [
        name if names.count(name) == 1 else f"{name} #{i + 1}" for i, name in enumerate(names)
    ]
    return [ResponseFile(m.path, name, m.data, m.summary)
            for m, name in zip(models, unique, strict=True)]


def _paired(a: ZDCDataset, b: ZDCDataset) -> bool:
    """Same particles in the same order: the paired metric (MAE) is meaningful."""
    return a.particles.shape == b.particles.shape and bool(
        np.allclose(a.particles, b.particles, rtol=1e-6, atol=0)
    )


def _metrics(
    reference: ResponseFile, generated: ResponseFile, floor: dict[str, Any] | None
) -> dict[str, Any]:
    """zdc_metrics of two files (same keys and values), plus "paired".

    Built from the summaries read once per file: zdc_metrics would summarise the
    reference again for every model, which dominated the report time.
    """
    paired = _paired(reference.data, generated.data)
    metrics = metrics_from_summaries(reference.summary, generated.summary, floor, paired=paired)
    metrics["paired"] = paired
    return metrics


# ------------------------------------------------------------------- breakdowns


def particle_families(particles: np.ndarray, pdg: np.ndarray | None = None) -> np.ndarray:
    """Index into FAMILIES of each particle: photon/electron, neutral or charged hadron.

    Decided by the PDG id when there is one (muons and neutrinos are "other"), else by
    the mass (< 1 MeV: photon/electron) and charge columns.
    """
    mass, charge = particles[:, _MASS], particles[:, _CHARGE]
    family = np.where(
        np.abs(mass) < _EM_MASS_LIMIT_MEV, 0, np.where(charge == 0, 1, 2)
    ).astype(np.int64)
    if pdg is not None:
        family[np.isin(pdg, list(_EM_PDG))] = 0
        family[np.isin(np.abs(pdg), list(_LEPTON_PDG))] = 3
    return family


class _Breakdown:
    """Compares sets with the reference per energy bin, per family and by centroids.

    Energy bins are equal-population bins of the reference energies; the first and last
    bins also take the particles of other sets below or above the reference range.
    """

    def __init__(self, reference: ResponseFile, n_energy_bins: int) -> None:
        self.reference = reference
        energy = reference.data.particles[:, 0].astype(np.float64)
        self.energy_edges = np.unique(np.quantile(energy, np.linspace(0, 1, n_energy_bins + 1)))
        if len(self.energy_edges) < 2:  # one energy only: a single bin around it
            self.energy_edges = np.array([energy[0] * 0.999, energy[0] * 1.001 + 1e-9])
        self._ref_bins = self._energy_bin(reference)
        self._ref_families = particle_families(reference.data.particles, reference.data.pdg)
        self.reference_residuals = centroid_residuals(reference)

    def _energy_bin(self, response_file: ResponseFile) -> np.ndarray:
        energy = response_file.data.particles[:, 0]
        index = np.searchsorted(self.energy_edges, energy, side="right") - 1
        return np.clip(index, 0, len(self.energy_edges) - 2)

    def compare(self, other: ResponseFile, floor: dict[str, Any] | None) -> dict[str, Any]:
        """energy_bins, families and centroid_residuals of ``other`` against the reference.

        With ``floor`` (the same dict computed for the floor), rows get ratio_to_floor.
        """
        paired = _paired(self.reference.data, other.data)
        families = particle_families(other.data.particles, other.data.pdg)
        energy_rows = _grouped_rows(
            self.reference.summary.channels, other.summary.channels, self._ref_bins,
            self._energy_bin(other), len(self.energy_edges) - 1, paired,
        )
        for row, low, high in zip(energy_rows, self.energy_edges[:-1], self.energy_edges[1:],
                                  strict=True):
            row.update(energy_low=float(low), energy_high=float(high))
        family_rows = _grouped_rows(
            self.reference.summary.channels, other.summary.channels, self._ref_families,
            families, len(FAMILIES), paired,
        )
        for row, name in zip(family_rows, FAMILIES, strict=True):
            row["family"] = name
        residuals = centroid_residuals(other)
        details = {
            "paired": paired,
            "energy_bins": energy_rows,
            "families": family_rows,
            "centroid_residuals": {
                **_residual_stats(residuals),
                "wasserstein_cm": _residual_w1(self.reference_residuals, residuals),
            },
        }
        if floor is not None:
            _add_floor_ratios(details, floor)
        return details

    def reference_residual_stats(self) -> dict[str, Any]:
        return _residual_stats(self.reference_residuals)


def _grouped_rows(
    ref_channels: np.ndarray, gen_channels: np.ndarray, ref_group: np.ndarray,
    gen_group: np.ndarray, n_groups: int, paired: bool,
) -> list[dict[str, Any]]:
    """W1 (per channel, mean) and, for paired sets, MAE within each group."""
    rows = []
    for group in range(n_groups):
        in_ref, in_gen = ref_group == group, gen_group == group
        row: dict[str, Any] = {
            "n_reference": int(in_ref.sum()), "n_generated": int(in_gen.sum()),
            "wasserstein_mean": None, "wasserstein_per_channel": None, "mae": None,
        }
        if row["n_reference"] and row["n_generated"]:
            distance = wasserstein_of_channels(ref_channels[in_ref], gen_channels[in_gen])
            row["wasserstein_mean"] = distance.mean
            row["wasserstein_per_channel"] = distance.to_dict()["per_channel"]
            if paired:
                row["mae"] = mae_of_channels(ref_channels[in_ref], gen_channels[in_ref])
        rows.append(row)
    return rows


def compared_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Breakdown entries of the compared sets of a result: the floor (if any), then models."""
    return ([result["floor_breakdown"]] if "floor_breakdown" in result else []) + result["models"]


def present_families(result: dict[str, Any]) -> list[int]:
    """Indices into FAMILIES of the families with particles in any set of a result."""
    entries = compared_entries(result)
    return [
        i for i in range(len(FAMILIES))
        if any(e["families"][i]["n_reference"] or e["families"][i]["n_generated"]
               for e in entries)
    ]


def centroid_residuals(response_file: ResponseFile) -> np.ndarray:
    """(n, 2) shower centroid minus MC impact point (cm), for particles hitting the face
    with a non-empty response."""
    from calosim.simulators.montecarlo import MonteCarloSimulator

    x, y, hits = MonteCarloSimulator().impact_point(response_file.data.particles)
    centres = response_file.summary.centroids
    used = hits & (response_file.summary.photon_sums > 0) & np.isfinite(centres).all(axis=1)
    return centres[used] - np.stack([x[used], y[used]], axis=1)


def _residual_stats(residuals: np.ndarray) -> dict[str, Any]:
    if not len(residuals):
        return {"n": 0, "mean_cm": None, "std_cm": None}
    return {
        "n": len(residuals),
        "mean_cm": [float(v) for v in residuals.mean(axis=0)],
        "std_cm": [float(v) for v in residuals.std(axis=0)],
    }


def _residual_w1(reference: np.ndarray, other: np.ndarray) -> list[float] | None:
    if not (len(reference) and len(other)):
        return None
    return [wasserstein_1d(reference[:, a], other[:, a]) for a in range(2)]


def _add_floor_ratios(details: dict[str, Any], floor: dict[str, Any]) -> None:
    """ratio_to_floor in every breakdown row (rows align: same bins, same families)."""
    for key in ("energy_bins", "families"):
        for row, base in zip(details[key], floor[key], strict=True):
            row["ratio_to_floor"] = {
                name: _ratio(row[name], base[name]) for name in ("wasserstein_mean", "mae")
            }
    own = details["centroid_residuals"]["wasserstein_cm"]
    base = floor["centroid_residuals"]["wasserstein_cm"]
    details["centroid_residuals"]["ratio_to_floor"] = (
        None if own is None or base is None else [_ratio(a, b) for a, b in zip(own, base,
                                                                              strict=True)]
    )


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return float(value) / float(base)


def particle_title(data: ZDCDataset, row: int) -> str:
    """Short description of one particle for figure titles: species (or mass/charge), energy."""
    particle = data.particles[row]
    if data.pdg is not None:
        name = pdg_name(int(data.pdg[row]))
    else:
        name = f"m={particle[_MASS]:.0f} MeV q={particle[_CHARGE]:+.0f}"
    return f"{name}\n{particle[0]:.0f} GeV"


# ------------------------------------------------------------------------ output


def _write_report(
    result: dict[str, Any], sets: list[ResponseFile], with_floor: bool,
    out_dir: str | os.PathLike[str],
) -> None:
    """Write the PNGs, metrics.json and report.html; ``sets``: reference, floor, models."""
    from calosim.report.figures_validation import validation_figures
    from calosim.report.html import validation_page
    from calosim.report.plots import output_directory, report_looks, write_png

    directory = output_directory(out_dir)
    floor_label = sets[1].label if with_floor else None
    models = sets[2:] if with_floor else sets[1:]
    looks = report_looks(sets[0].label, [m.label for m in models], floor_label)
    pngs = validation_figures(result, sets, looks)
    result["plots"] = [str(write_png(data, directory / name)) for name, data in pngs.items()]
    result["report"] = str(directory / REPORT_HTML)
    write_json_atomic(directory / METRICS_JSON, result)
    validation_page(result, pngs).write(directory / REPORT_HTML)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: each metric, and with a floor, the floor and the ratio to it.

    Several models: one block per model, headed by its label.
    """
    models = result.get("models") or [{"label": None, "metrics": result["metrics"]}]
    blocks = [_metric_table(m["metrics"], result.get("floor")) for m in models]
    if len(models) == 1:
        return blocks[0]
    return "\n\n".join(f"== {m['label']}\n{block}" for m, block in zip(models, blocks,
                                                                       strict=True))


def _metric_table(metrics: dict[str, Any], floor: dict[str, Any] | None) -> str:
    ratios = metrics.get("ratio_to_floor", {})

    def row(name: str, pick: Any, ratio: Any) -> str | None:
        value = pick(metrics)
        if value is None:
            return None
        line = f"{name:<16}{value:>12.4g}"
        if floor is not None:
            shown = "-" if ratio is None else f"{ratio:.2f}"
            floor_value = pick(floor)
            line += ("-" if floor_value is None else f"{floor_value:.4g}").rjust(12)
            line += f"{shown:>9}"
        return line

    per_channel = ratios.get("wasserstein_per_channel") or [None] * 5
    rows = [
        row(f"W1 ch{i + 1}", lambda m, i=i: m["wasserstein"]["per_channel"][i], per_channel[i])
        for i in range(5)
    ]
    rows.append(row("W1 mean", lambda m: m["wasserstein"]["mean"], ratios.get("wasserstein_mean")))
    rows.append(row("channel MAE", lambda m: m.get("mae"), ratios.get("mae")))
    rows.append(row("pooled log W1", lambda m: m["pooled_log_wasserstein"],
                    ratios.get("pooled_log_wasserstein")))
    header = f"{'metric':<16}{'value':>12}"
    if floor is not None:
        header += f"{'floor':>12}{'ratio':>9}"
    return "\n".join([header, "-" * len(header), *[r for r in rows if r is not None]])


def validate_continual(
    run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Transfer metrics of a continual run directory (see calosim.metrics.continual).

    Returns {"run": ..., "matrix": ..., "transfer": {...}} and, for a run with noise floors,
    "ratio": the same for the matrix as ratios to each task's floor; with ``out_dir``
    writes metrics.json, the heat maps and report.html there.
    """
    from calosim.metrics.continual import r_matrix_path, read_r_matrix

    run = read_r_matrix(run_dir)
    result: dict[str, Any] = {"run": str(r_matrix_path(run_dir)), **_continual_entry(run)}
    ratio_dir = Path(run_dir) / f"{run.metric}_ratio"
    ratio = read_r_matrix(ratio_dir) if (ratio_dir / "r_matrix.json").is_file() else None
    if ratio is not None:
        result["ratio"] = _continual_entry(ratio)
    if out_dir is not None:
        from calosim.report.figures_continual import R_MATRIX_PNG, r_matrix_figure
        from calosim.report.html import continual_page
        from calosim.report.plots import output_directory, render_png, write_png

        directory = output_directory(out_dir)
        pngs = [render_png(r_matrix_figure(r)) for r in (run, ratio) if r is not None]
        names = [R_MATRIX_PNG, f"ratio_{R_MATRIX_PNG}"]
        result["plots"] = [str(write_png(png, directory / name))
                           for png, name in zip(pngs, names, strict=False)]
        result["report"] = str(directory / REPORT_HTML)
        write_json_atomic(directory / METRICS_JSON, result)
        continual_page(result, pngs).write(directory / REPORT_HTML)
    return result


def _continual_entry(run: Any) -> dict[str, Any]:
    """An R matrix, its baseline and transfer metrics as plain values (NaN as None)."""
    from calosim.metrics.continual import transfer_metrics

    return {
        "matrix": [[None if np.isnan(v) else float(v) for v in row] for row in run.matrix],
        "baseline": None if run.baseline is None else [
            None if np.isnan(v) else float(v) for v in run.baseline
        ],
        "transfer": transfer_metrics(run),
    }
