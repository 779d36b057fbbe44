"""Figures that break the comparison down: centroid residuals, energy bins, families."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from calosim.metrics import wasserstein_1d
from calosim.report.plots import Look

CENTROIDS_PNG = "centroid_residuals.png"
ENERGY_BINS_PNG = "energy_bins.png"
FAMILIES_PNG = "families.png"
N_RESIDUAL_BINS = 60
_AXES = ("x", "y")
_GRID = {"left": 0.07, "right": 0.98, "top": 0.92, "bottom": 0.13, "wspace": 0.22}

# A per-group metric table: one entry per compared set, each one value per group
# (None where undefined, e.g. no MAE for unpaired sets or an empty group).
GroupValues = Sequence[Sequence[float | None]]


def centroid_residuals_figure(residuals: Sequence[np.ndarray], looks: Sequence[Look]) -> Figure:
    """Histograms of centroid - impact point (x and y, cm); the first set is the reference.

    ``residuals[i]``: (n_i, 2) residuals of the responses used (particles hitting the
    face with non-empty responses). The W1 to the reference is in each legend entry.
    """
    figure = Figure(figsize=(11, 4.2))
    axes = figure.subplots(1, 2, gridspec_kw=_GRID)
    reference = residuals[0]
    for axis, ax in enumerate(axes):
        edges = _residual_edges(reference[:, axis])
        for values, look in zip(residuals, looks, strict=True):
            label = f"{look.label} (N={len(values)})"
            if values is not reference and len(values) and len(reference):
                label += f", W1 {wasserstein_1d(reference[:, axis], values[:, axis]):.3g} cm"
            counts = np.histogram(values[:, axis], edges)[0]
            ax.stairs(counts / max(len(values), 1), edges, label=label, **look.style)
        ax.set_xlabel(f"centroid {_AXES[axis]} - impact {_AXES[axis]} (cm)")
        ax.set_ylabel("fraction of responses")
        ax.set_yscale("log")
        ax.minorticks_off()
        ax.set_title(f"shower centroid residual, {_AXES[axis]}", fontsize="medium")
    axes[0].legend(fontsize="x-small")
    return figure


def _residual_edges(reference: np.ndarray) -> np.ndarray:
    """Bins over the central 99 % of the reference residuals, symmetric about zero."""
    half = float(np.percentile(np.abs(reference), 99.5)) if len(reference) else 1.0
    half = max(half, 0.16)  # at least one fibre pitch
    return np.linspace(-half, half, N_RESIDUAL_BINS + 1)


def energy_bins_figure(
    edges: np.ndarray, looks: Sequence[Look], w1: GroupValues, mae: GroupValues
) -> Figure:
    """W1 (mean of the channels) and channel MAE per energy bin, one curve per set.

    Points sit at the geometric centre of each bin, the horizontal bar spans the bin.
    """
    centres = np.sqrt(np.maximum(edges[:-1], 1e-3) * edges[1:])
    spans = np.array([centres - edges[:-1], edges[1:] - centres])

    def draw(ax: Axes, values: GroupValues) -> None:
        for per_bin, look in zip(values, looks, strict=True):
            y = np.array([np.nan if v is None else v for v in per_bin], dtype=float)
            ax.errorbar(centres, y, xerr=spans, marker="o", markersize=4, capsize=0,
                        label=look.label, **look.style)
        ax.set_xscale("log")
        ax.set_xlabel("particle energy (GeV)")
        finite = np.array([v for per_bin in values for v in per_bin if v is not None])
        if len(finite) and finite.min() > 0:
            ax.set_yscale("log")  # the metrics grow by decades with the energy

    return _two_panels(draw, w1, mae)


def families_figure(
    families: Sequence[str], looks: Sequence[Look], w1: GroupValues, mae: GroupValues
) -> Figure:
    """W1 (mean of the channels) and channel MAE per particle family, grouped bars."""
    positions = np.arange(len(families))
    width = 0.8 / max(len(looks), 1)

    def draw(ax: Axes, values: GroupValues) -> None:
        for k, (per_family, look) in enumerate(zip(values, looks, strict=True)):
            y = [np.nan if v is None else v for v in per_family]
            ax.bar(positions + (k - (len(looks) - 1) / 2) * width, y, width, label=look.label,
                   color=look.colour, alpha=0.75, hatch="//" if look.is_floor else "")
        ax.set_xticks(positions, families, fontsize="small")

    return _two_panels(draw, w1, mae)


def _two_panels(
    draw: Callable[[Axes, GroupValues], None], w1: GroupValues, mae: GroupValues
) -> Figure:
    """W1 on the left, MAE on the right (a note instead when no set is paired)."""
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2, gridspec_kw=_GRID)
    draw(left, w1)
    left.set_title("mean channel W1 (photons)", fontsize="medium")
    left.legend(fontsize="x-small")
    if any(v is not None for values in mae for v in values):
        draw(right, mae)
        right.set_title("channel MAE (photons), paired sets only", fontsize="medium")
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "no channel MAE:\nno set is paired with the reference",
                   ha="center", va="center", transform=right.transAxes)
    return figure
