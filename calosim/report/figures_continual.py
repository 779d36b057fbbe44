"""The R matrix of a continual run as an annotated heat map."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from calosim.metrics.continual import ContinualRun

R_MATRIX_PNG = "r_matrix.png"


def r_matrix_figure(run: ContinualRun) -> Figure:
    """Heat map of R[i][j] (row: after training task i, column: evaluated on task j).

    Better values are brighter whatever the metric's direction; unmeasured entries stay
    blank; every measured entry is written in its cell.
    """
    size = 0.8 * run.n_tasks + 2.5
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = figure.add_subplot()
    matrix = np.ma.masked_invalid(run.matrix)
    shown = ax.imshow(matrix, cmap="viridis_r" if run.lower_is_better else "viridis")
    figure.colorbar(shown, ax=ax, label=run.metric)
    low, high = float(matrix.min()), float(matrix.max())
    middle = (low + high) / 2
    for (i, j), value in np.ndenumerate(run.matrix):
        if np.isfinite(value):
            bright = (value < middle) == run.lower_is_better
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize="small",
                    color="black" if bright else "white")
    ticks = np.arange(run.n_tasks)
    ax.set_xticks(ticks, run.tasks, rotation=30, ha="right", fontsize="small")
    ax.set_yticks(ticks, run.tasks, fontsize="small")
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training task")
    direction = "lower" if run.lower_is_better else "higher"
    ax.set_title(f"R matrix: {run.metric} ({direction} is better)", fontsize="medium")
    return figure
