"""Validation figures of `calosim validate`: channel and photon-sum histograms, mean images.

Figures are built with matplotlib's object API (matplotlib.figure.Figure rendered by the
Agg canvas), never through pyplot, so no figure stays open and no window is ever shown.
Every PNG is written to a temporary file in the output directory and moved into place,
so an interrupted run never leaves a truncated image behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calosim.errors import CalosimError
from calosim.metrics import (
    CHANNEL_LABELS,
    N_CHANNELS,
    PIXEL_CENTRES_CM,
    MetricInputError,
    ResponseSummary,
    channel_mask,
    summarize_responses,
    wasserstein_1d,
)

CHANNELS_PNG = "channels.png"
PHOTON_SUM_PNG = "photon_sum.png"
MEAN_IMAGES_PNG = "mean_images.png"
N_BINS = 50
DPI = 110
_STYLES = (
    {"color": "black", "linewidth": 1.6},
    {"color": "tab:red", "linewidth": 1.3},
    {"color": "tab:blue", "linewidth": 1.1, "linestyle": "--"},
)


@dataclass(frozen=True)
class _Sample:
    """One distribution drawn in a histogram panel."""

    values: np.ndarray
    label: str


def write_validation_plots(
    reference: Any,
    generated: Any,
    out_dir: str | os.PathLike[str],
    *,
    labels: Sequence[str] = ("reference", "generated"),
    floor_generated: Any = None,
    parity: str = "odd",
) -> list[Path]:
    """Write channels.png, photon_sum.png and mean_images.png into ``out_dir``.

    ``reference`` and ``generated``: response sets (N, 44, 44) of photon counts (sizes
    may differ). ``floor_generated``: optionally a second independent full simulation
    of the reference particles, drawn as the noise floor. ``labels`` name reference and
    generated in legends. Returns the written paths, in the order above.
    """
    if len(labels) != 2:
        raise MetricInputError(f"labels: expected 2 names, got {len(labels)}")
    mask = channel_mask(parity)
    sets = [
        summarize_responses(reference, mask, labels[0]),
        summarize_responses(generated, mask, labels[1]),
    ]
    names = list(labels)
    if floor_generated is not None:
        sets.append(summarize_responses(floor_generated, mask, "floor"))
        names.append(f"{labels[0]}, 2nd simulation")
    directory = _output_directory(out_dir)
    return [
        _save(_channels_figure(sets, names), directory / CHANNELS_PNG),
        _save(_photon_sum_figure(sets, names), directory / PHOTON_SUM_PNG),
        _save(_mean_images_figure(sets[0], sets[1], names), directory / MEAN_IMAGES_PNG),
    ]


def _channels_figure(sets: list[ResponseSummary], names: list[str]) -> Figure:
    figure = Figure(figsize=(4 * N_CHANNELS, 5.5), layout="constrained")
    grid = figure.add_gridspec(2, N_CHANNELS, height_ratios=(3, 1))
    for c in range(N_CHANNELS):
        samples = [_Sample(s.channels[:, c], n) for s, n in zip(sets, names, strict=True)]
        _histogram_with_ratio(
            figure.add_subplot(grid[0, c]), figure.add_subplot(grid[1, c]), samples,
            _w1_title(CHANNEL_LABELS[c], samples), legend=c == 0,
        )
    return figure


def _photon_sum_figure(sets: list[ResponseSummary], names: list[str]) -> Figure:
    figure = Figure(figsize=(6, 5.5), layout="constrained")
    grid = figure.add_gridspec(2, 1, height_ratios=(3, 1))
    samples = [_Sample(s.photon_sums, n) for s, n in zip(sets, names, strict=True)]
    _histogram_with_ratio(
        figure.add_subplot(grid[0]), figure.add_subplot(grid[1]), samples,
        _w1_title("photon sum", samples),
    )
    return figure


def _histogram_with_ratio(
    main: Axes, ratio: Axes, samples: list[_Sample], title: str, *, legend: bool = True
) -> None:
    """Normalised histograms (log y) above their ratios to the first sample.

    Bins are spaced evenly in sqrt(value): photon counts span three decades and hold
    many zeros, which log-spaced bins could not show.
    """
    edges = _sqrt_edges([s.values for s in samples])
    # Divided by the bin width: the bins differ in width and the curves must not.
    fractions = [np.histogram(s.values, edges)[0] / len(s.values) / np.diff(edges) for s in samples]
    base = fractions[0]
    for sample, fraction, style in zip(samples, fractions, _STYLES, strict=False):
        main.stairs(fraction, edges, label=f"{sample.label} (N={len(sample.values)})", **style)
    for fraction, style in zip(fractions[1:], _STYLES[1:], strict=False):
        shown = np.divide(fraction, base, out=np.full_like(base, np.nan), where=base > 0)
        ratio.stairs(shown, edges, **style)
    main.set_yscale("log")
    main.set_title(title, fontsize="medium")
    main.set_ylabel("fraction of responses per photon")
    if legend:
        main.legend(fontsize="small")
    main.tick_params(labelbottom=False)
    ratio.sharex(main)
    ratio.axhline(1.0, color="grey", linewidth=0.8)
    ratio.set_ylim(0.0, 2.0)
    ratio.set_ylabel(f"/ {samples[0].label}"[:24], fontsize="small")
    ratio.set_xlabel("photons")


def _sqrt_edges(values: list[np.ndarray]) -> np.ndarray:
    low = min(0.0, *(float(v.min()) for v in values))
    high = max(float(v.max()) for v in values)
    span = max(high - low, 1.0)
    edges = low + np.linspace(0.0, np.sqrt(span), N_BINS + 1) ** 2
    if all(np.array_equal(v, np.round(v)) for v in values):
        # Integer counts: edges between integers, at least one count wide, so that no
        # bin is empty only because it falls between two integers.
        edges = np.unique(np.round(edges)) - 0.5
        edges = np.append(edges[edges < high + 0.5], high + 0.5)
    return edges


def _w1_title(quantity: str, samples: list[_Sample]) -> str:
    """'quantity: W1 x' for sample 1 against sample 0, with the floor (sample 2) if drawn."""
    title = f"{quantity}: W1 {_w1(samples[0], samples[1]):.3g}"
    if len(samples) > 2:
        title += f" (floor {_w1(samples[0], samples[2]):.3g})"
    return title


def _w1(a: _Sample, b: _Sample) -> float:
    return wasserstein_1d(a.values, b.values)


def _mean_images_figure(
    reference: ResponseSummary, generated: ResponseSummary, names: list[str]
) -> Figure:
    figure = Figure(figsize=(15, 4.6), layout="constrained")
    axes = figure.subplots(1, 3)
    # Shared limits make the two means comparable by eye; the difference map is symmetric
    # about zero so that a colour's sign is unambiguous.
    top = max(float(reference.mean_image.max()), float(generated.mean_image.max()), 1e-12)
    difference = generated.mean_image - reference.mean_image
    spread = max(float(np.abs(difference).max()), 1e-12)
    half_pitch = (PIXEL_CENTRES_CM[1] - PIXEL_CENTRES_CM[0]) / 2
    extent = (
        PIXEL_CENTRES_CM[0] - half_pitch, PIXEL_CENTRES_CM[-1] + half_pitch,
        PIXEL_CENTRES_CM[-1] + half_pitch, PIXEL_CENTRES_CM[0] - half_pitch,
    )
    panels = (
        (reference.mean_image, f"mean {names[0]}", "viridis", 0.0, top),
        (generated.mean_image, f"mean {names[1]}", "viridis", 0.0, top),
        (difference, f"{names[1]} - {names[0]}", "RdBu_r", -spread, spread),
    )
    for ax, (image, title, cmap, low, high) in zip(axes, panels, strict=True):
        shown = ax.imshow(image, cmap=cmap, vmin=low, vmax=high, extent=extent)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("y (cm)")
        ax.set_ylabel("x (cm)")
        figure.colorbar(shown, ax=ax, label="photons per response")
    return figure


def _output_directory(out_dir: str | os.PathLike[str]) -> Path:
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CalosimError(
            f"{directory}: cannot create the plot directory ({error.strerror})"
        ) from None
    return directory


def _save(figure: Figure, path: Path) -> Path:
    """Render ``figure`` to ``path`` atomically (temporary file, then os.replace)."""
    FigureCanvasAgg(figure)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".png")
    try:
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, format="png", dpi=DPI)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
