"""Validation figures of response distributions: channels, photon sums, mean images.

Every figure compares a reference set (the full simulation) with one or more compared
sets: the models and, when given, the noise floor (a second full simulation of the same
particles). Figures are built with matplotlib's object API (matplotlib.figure.Figure on
the Agg canvas), never through pyplot, so no figure stays open and no window is shown.
They are rendered to PNG bytes in memory (render_png) so that one rendering serves both
the PNG file and the HTML report; files are written atomically (write_png).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calosim.data.formats import atomic_output
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
DPI = 90
REFERENCE_STYLE: Mapping[str, Any] = {"color": "black", "linewidth": 1.6}
FLOOR_STYLE: Mapping[str, Any] = {"color": "grey", "linewidth": 1.3, "linestyle": "--"}
MODEL_COLOURS = (
    "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink",
    "tab:olive", "tab:cyan",
)
# Pixel edges in cm, so images are drawn in the frame of centroids and impact points.
_HALF_PITCH = (PIXEL_CENTRES_CM[1] - PIXEL_CENTRES_CM[0]) / 2
IMAGE_EXTENT = (
    PIXEL_CENTRES_CM[0] - _HALF_PITCH, PIXEL_CENTRES_CM[-1] + _HALF_PITCH,
    PIXEL_CENTRES_CM[-1] + _HALF_PITCH, PIXEL_CENTRES_CM[0] - _HALF_PITCH,
)


# Fixed margins (fractions of the figure): a layout engine (constrained, tight) measures
# every tick label and took half of the report's rendering time.
_MARGINS = {"left": 0.06, "right": 0.98, "top": 0.93, "bottom": 0.1}


@dataclass(frozen=True)
class Look:
    """How one set appears in every figure: legend label, line style, floor or not."""

    label: str
    style: Mapping[str, Any]
    is_floor: bool = False

    @property
    def colour(self) -> str:
        return str(self.style["color"])


def report_looks(reference: str, models: Sequence[str], floor: str | None) -> list[Look]:
    """Looks in drawing order: the reference, the floor (if any), then each model."""
    looks = [Look(reference, REFERENCE_STYLE)]
    if floor is not None:
        looks.append(Look(floor, FLOOR_STYLE, is_floor=True))
    looks += [
        Look(label, {"color": MODEL_COLOURS[i % len(MODEL_COLOURS)], "linewidth": 1.2})
        for i, label in enumerate(models)
    ]
    return looks


@dataclass(frozen=True)
class _Sample:
    """One distribution drawn in a histogram panel."""

    values: np.ndarray
    look: Look


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
    summaries = [summarize_responses(reference, mask, labels[0])]
    floor_label = None
    if floor_generated is not None:
        summaries.append(summarize_responses(floor_generated, mask, "floor"))
        floor_label = f"{labels[0]}, 2nd simulation"
    summaries.append(summarize_responses(generated, mask, labels[1]))
    looks = report_looks(labels[0], [labels[1]], floor_label)
    directory = output_directory(out_dir)
    figures = {
        CHANNELS_PNG: channels_figure(summaries, looks),
        PHOTON_SUM_PNG: photon_sum_figure(summaries, looks),
        MEAN_IMAGES_PNG: mean_images_figure(summaries, looks),
    }
    return [write_png(render_png(figure), directory / name) for name, figure in figures.items()]


def channels_figure(summaries: Sequence[ResponseSummary], looks: Sequence[Look]) -> Figure:
    """Per-channel histograms with ratio panels; the first set is the reference."""
    figure = Figure(figsize=(3.6 * N_CHANNELS, 5.2))
    grid = figure.add_gridspec(2, N_CHANNELS, height_ratios=(3, 1), **_MARGINS,
                               wspace=0.28, hspace=0.06)
    for c in range(N_CHANNELS):
        samples = [
            _Sample(s.channels[:, c], look) for s, look in zip(summaries, looks, strict=True)
        ]
        histogram_with_ratio(
            figure.add_subplot(grid[0, c]), figure.add_subplot(grid[1, c]), samples,
            CHANNEL_LABELS[c], first=c == 0,
        )
    return figure


def photon_sum_figure(summaries: Sequence[ResponseSummary], looks: Sequence[Look]) -> Figure:
    """Photon-sum histogram with its ratio panel, beside the fraction of empty responses."""
    figure = Figure(figsize=(10, 5.2))
    grid = figure.add_gridspec(2, 2, height_ratios=(3, 1), width_ratios=(3, 2),
                               **{**_MARGINS, "left": 0.09, "bottom": 0.2}, wspace=0.25,
                               hspace=0.06)
    samples = [_Sample(s.photon_sums, look) for s, look in zip(summaries, looks, strict=True)]
    histogram_with_ratio(
        figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[1, 0]), samples, "photon sum"
    )
    fractions = [float(np.mean(s.lit_pixels == 0)) for s in summaries]
    bar_chart(figure.add_subplot(grid[:, 1]), looks, fractions, "fraction of empty responses")
    return figure


def bar_chart(ax: Axes, looks: Sequence[Look], values: Sequence[float | None], title: str) -> None:
    """One bar per set in its colour (the floor hatched), the value written above it."""
    positions = np.arange(len(looks))
    heights = [np.nan if v is None else v for v in values]
    bars = ax.bar(
        positions, heights, color=[look.colour for look in looks], alpha=0.75,
        hatch=[("//" if look.is_floor else "") for look in looks],
    )
    ax.bar_label(bars, labels=[_short(v) for v in values], fontsize="small")
    ax.set_xticks(positions, [look.label for look in looks], rotation=20, ha="right",
                  fontsize="small")
    ax.set_title(title, fontsize="medium")
    ax.margins(y=0.15)


def histogram_with_ratio(
    main: Axes, ratio: Axes, samples: Sequence[_Sample], quantity: str, *, first: bool = True
) -> None:
    """Normalised histograms (log y) above their ratios to the first sample (reference).

    Bins are spaced evenly in sqrt(value): photon counts span three decades and hold
    many zeros, which log-spaced bins could not show. The W1 of every other sample to
    the first is written in the panel.
    """
    edges = sqrt_edges([s.values for s in samples])
    # Divided by the bin width: the bins differ in width and the curves must not.
    fractions = [
        np.histogram(s.values, edges)[0] / max(len(s.values), 1) / np.diff(edges) for s in samples
    ]
    base = fractions[0]
    for sample, fraction in zip(samples, fractions, strict=True):
        main.stairs(fraction, edges, label=f"{sample.look.label} (N={len(sample.values)})",
                    **sample.look.style)
    for sample, fraction in zip(samples[1:], fractions[1:], strict=True):
        shown = np.divide(fraction, base, out=np.full_like(base, np.nan), where=base > 0)
        ratio.stairs(shown, edges, **sample.look.style)
    main.set_yscale("log")
    main.minorticks_off()  # log-axis minor ticks cost a third of the drawing time
    main.set_title(quantity, fontsize="medium")
    if first:
        main.set_ylabel("fraction of responses per photon")
    w1_lines = [
        f"W1 {s.look.label}: {wasserstein_1d(samples[0].values, s.values):.3g}"
        for s in samples[1:]
    ]
    main.text(0.98, 0.97, "\n".join(w1_lines), transform=main.transAxes, ha="right", va="top",
              fontsize="x-small", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    if first:
        main.legend(fontsize="x-small", loc="lower left")
    main.tick_params(labelbottom=False)
    ratio.sharex(main)
    ratio.axhline(1.0, color="grey", linewidth=0.8)
    ratio.set_ylim(0.0, 2.0)
    if first:
        ratio.set_ylabel(f"/ {samples[0].look.label}"[:24], fontsize="small")
    ratio.set_xlabel("photons")


def sqrt_edges(values: Sequence[np.ndarray]) -> np.ndarray:
    """N_BINS bin edges evenly spaced in sqrt(value) over all samples."""
    non_empty = [v for v in values if len(v)]
    low = min(0.0, *(float(v.min()) for v in non_empty))
    high = max(float(v.max()) for v in non_empty)
    span = max(high - low, 1.0)
    edges = low + np.linspace(0.0, np.sqrt(span), N_BINS + 1) ** 2
    if all(np.array_equal(v, np.round(v)) for v in non_empty):
        # Integer counts: edges between integers, at least one count wide, so that no
        # bin is empty only because it falls between two integers.
        edges = np.unique(np.round(edges)) - 0.5
        edges = np.append(edges[edges < high + 0.5], high + 0.5)
    return edges


def mean_images_figure(summaries: Sequence[ResponseSummary], looks: Sequence[Look]) -> Figure:
    """Top row: the mean image of each set; bottom row: each set minus the reference."""
    n_sets = len(summaries)
    figure = Figure(figsize=(3.6 * n_sets + 1.2, 6.6))
    axes = figure.subplots(2, n_sets, squeeze=False,
                           gridspec_kw={**_MARGINS, "right": 0.93, "wspace": 0.35,
                                        "hspace": 0.3})
    means = [s.mean_image for s in summaries]
    # Shared limits make the means comparable by eye; the difference maps are symmetric
    # about zero so that a colour's sign is unambiguous.
    top = max(max(float(m.max()) for m in means), 1e-12)
    differences = [m - means[0] for m in means[1:]]
    spread = max([float(np.abs(d).max()) for d in differences] + [1e-12])
    for ax, image, look in zip(axes[0], means, looks, strict=True):
        shown = draw_image(ax, image, f"mean {look.label}", "viridis", 0.0, top)
    # A colour bar for a whole row shrinks every panel of the row alike.
    figure.colorbar(shown, ax=list(axes[0]), label="photons per response", fraction=0.03)
    axes[1, 0].set_axis_off()
    axes[1, 0].text(0.5, 0.5, "differences to\n" + looks[0].label, ha="center", va="center",
                    transform=axes[1, 0].transAxes)
    for ax, image, look in zip(axes[1, 1:], differences, looks[1:], strict=True):
        shown = draw_image(ax, image, f"{look.label} - {looks[0].label}", "RdBu_r",
                           -spread, spread)
    if differences:
        figure.colorbar(shown, ax=list(axes[1]), label="photons per response", fraction=0.03)
    return figure


def draw_image(ax: Axes, image: np.ndarray, title: str, cmap: str, low: float,
               high: float) -> Any:
    """Draw a 44 x 44 image in cm (x down the rows, y along the columns); returns it."""
    shown = ax.imshow(image, cmap=cmap, vmin=low, vmax=high, extent=IMAGE_EXTENT)
    ax.set_title(title, fontsize="small")
    ax.set_xlabel("y (cm)", fontsize="small")
    ax.set_ylabel("x (cm)", fontsize="small")
    return shown


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def output_directory(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a Path, created if missing; CalosimError if that is impossible."""
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CalosimError(
            f"{directory}: cannot create the plot directory ({error.strerror})"
        ) from None
    return directory


def render_png(figure: Figure) -> bytes:
    """The figure as PNG bytes (Agg canvas; nothing registered with pyplot)."""
    FigureCanvasAgg(figure)
    stream = io.BytesIO()
    figure.savefig(stream, format="png", dpi=DPI)
    return stream.getvalue()


def write_png(data: bytes, path: Path) -> Path:
    """Write PNG bytes to ``path`` atomically (temporary file, then os.replace)."""
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)
    return path
