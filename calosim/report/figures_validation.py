"""Every figure of a validation report, rendered to PNG bytes keyed by file name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from calosim.report.figures_breakdown import (
    CENTROIDS_PNG,
    ENERGY_BINS_PNG,
    FAMILIES_PNG,
    centroid_residuals_figure,
    energy_bins_figure,
    families_figure,
)
from calosim.report.figures_responses import (
    N_SHOWN,
    SINGLE_RESPONSES_PNG,
    single_responses_figure,
)
from calosim.report.plots import (
    CHANNELS_PNG,
    MEAN_IMAGES_PNG,
    PHOTON_SUM_PNG,
    Look,
    channels_figure,
    mean_images_figure,
    photon_sum_figure,
    render_png,
)
from calosim.report.validation import (
    ResponseFile,
    centroid_residuals,
    compared_entries,
    particle_title,
    present_families,
)


def validation_figures(
    result: dict[str, Any], sets: Sequence[ResponseFile], looks: Sequence[Look]
) -> dict[str, bytes]:
    """PNG bytes of every report figure, by file name.

    ``result``: the dict of validate_files; ``sets``: the reference, then the floor (if
    any), then the models, in the order of ``looks``.
    """
    summaries = [s.summary for s in sets]
    entries = compared_entries(result)
    figures = {
        CHANNELS_PNG: channels_figure(summaries, looks),
        PHOTON_SUM_PNG: photon_sum_figure(summaries, looks),
        MEAN_IMAGES_PNG: mean_images_figure(summaries, looks),
        SINGLE_RESPONSES_PNG: _single_responses(sets, looks, entries),
        CENTROIDS_PNG: centroid_residuals_figure([centroid_residuals(s) for s in sets], looks),
        ENERGY_BINS_PNG: energy_bins_figure(
            _energy_edges(result), looks[1:], *_group_values(entries, "energy_bins")
        ),
    }
    families = present_families(result)
    figures[FAMILIES_PNG] = families_figure(
        [entries[0]["families"][i]["family"] for i in families], looks[1:],
        *_group_values(entries, "families", families),
    )
    return {name: render_png(figure) for name, figure in figures.items()}


def _single_responses(
    sets: Sequence[ResponseFile], looks: Sequence[Look], entries: list[dict[str, Any]]
) -> Figure:
    """The first particles with a non-empty reference response (the first particles if
    all are empty), beside the responses of the sets paired with the reference."""
    shown = [0] + [k + 1 for k, entry in enumerate(entries) if entry["paired"]]
    rows = np.flatnonzero(sets[0].summary.photon_sums > 0)[:N_SHOWN]
    if not len(rows):
        rows = np.arange(min(N_SHOWN, len(sets[0].data)))
    return single_responses_figure(
        [sets[k].data.responses[rows] for k in shown], [looks[k] for k in shown],
        [particle_title(sets[0].data, row) for row in rows],
    )


def _energy_edges(result: dict[str, Any]) -> np.ndarray:
    rows = result["models"][0]["energy_bins"]
    return np.array([rows[0]["energy_low"]] + [row["energy_high"] for row in rows])


def _group_values(
    entries: list[dict[str, Any]], key: str, groups: Sequence[int] | None = None
) -> tuple[list[list[float | None]], list[list[float | None]]]:
    """(W1 per group, MAE per group) of each compared set, for ``groups`` (default all)."""
    chosen = [
        [entry[key][i] for i in (groups if groups is not None else range(len(entry[key])))]
        for entry in entries
    ]
    return (
        [[row["wasserstein_mean"] for row in rows] for rows in chosen],
        [[row["mae"] for row in rows] for rows in chosen],
    )
