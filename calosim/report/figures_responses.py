"""A grid of single responses: the same particles, one row per response set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from calosim.metrics.observables import log1p_counts
from calosim.report.plots import IMAGE_EXTENT, Look

SINGLE_RESPONSES_PNG = "single_responses.png"
N_SHOWN = 8


def single_responses_figure(
    rows: Sequence[np.ndarray], looks: Sequence[Look], particle_titles: Sequence[str]
) -> Figure:
    """One row per set (``rows[i]``: (k, 44, 44) photon counts of the same k particles),
    one column per particle titled by ``particle_titles``.

    Drawn in log(1 + photons) on one colour scale for the whole grid, so that a pixel's
    colour means the same count in every panel.
    """
    images = [log1p_counts(np.asarray(r, dtype=np.float64)) for r in rows]
    n_columns = len(particle_titles)
    top = max(max(float(i.max()) for i in images), 1e-12)
    figure = Figure(figsize=(1.75 * n_columns + 1.5, 1.9 * len(rows) + 0.6))
    axes = figure.subplots(len(rows), n_columns, squeeze=False, gridspec_kw={
        "left": 0.06, "right": 0.95, "top": 0.88, "bottom": 0.02, "wspace": 0.05,
        "hspace": 0.08,
    })
    for r, (row_images, look) in enumerate(zip(images, looks, strict=True)):
        for c in range(n_columns):
            ax = axes[r, c]
            shown = ax.imshow(row_images[c], cmap="magma", vmin=0.0, vmax=top,
                              extent=IMAGE_EXTENT)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(particle_titles[c], fontsize="x-small")
            if c == 0:
                ax.set_ylabel(look.label, fontsize="small", color=look.colour)
    figure.colorbar(shown, ax=list(axes.ravel()), label="log(1 + photons)", fraction=0.02,
                    pad=0.01)
    return figure
