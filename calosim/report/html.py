"""Self-contained HTML pages: inline CSS, PNGs embedded as base64 data URIs, no links out.

A page opens offline, in a mail attachment or an archive, exactly as it was written.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calosim._version import __version__
from calosim.data.formats import atomic_output

MISSING = "-"
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px;
       padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin-top: 0; }
nav ol { columns: 2; color: #555; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.floor td { color: #666; font-style: italic; }
"""


def cell(value: Any) -> str:
    """A table cell's text: 4 significant digits for numbers, '-' for None or NaN."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return MISSING if value != value else f"{value:.4g}"
    return str(value)


def ratio_cell(value: float | None) -> str:
    """A ratio to the noise floor, e.g. '2.31x' ('-' when undefined)."""
    return MISSING if value is None else f"{value:.2f}x"


class HtmlPage:
    """A report page built section by section, then rendered to one HTML string."""

    def __init__(self, title: str, meta: Sequence[str] = ()) -> None:
        self.title = title
        self._meta = [*meta, f"calosim {__version__}"]
        self._sections: list[tuple[str, str]] = []  # (anchor, title) for the contents
        self._body: list[str] = []

    def section(self, title: str) -> None:
        """Start a section (listed in the contents at the top)."""
        anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
        anchor = f"{anchor}-{len(self._sections) + 1}"
        self._sections.append((anchor, title))
        self._body.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def paragraph(self, text: str) -> None:
        """A paragraph of plain text (escaped)."""
        self._body.append(f"<p>{html.escape(text)}</p>")

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        caption: str | None = None,
        floor_rows: Sequence[int] = (),
    ) -> None:
        """A table; cells go through ``cell``; rows whose index is in ``floor_rows`` are
        set apart as noise-floor rows."""
        parts = ["<table>"]
        if caption:
            parts.append(f"<caption>{html.escape(caption)}</caption>")
        parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        for index, row in enumerate(rows):
            opening = '<tr class="floor">' if index in floor_rows else "<tr>"
            parts.append(
                opening + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
            )
        parts.append("</table>")
        self._body.append("\n".join(parts))

    def image(self, png: bytes, alt: str, caption: str | None = None) -> None:
        """A PNG embedded in the page as a base64 data URI."""
        source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        caption_html = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._body.append(
            f'<figure><img src="{source}" alt="{html.escape(alt)}">{caption_html}</figure>'
        )

    def render(self) -> str:
        """The whole page as one HTML document."""
        contents = "".join(
            f'<li><a href="#{anchor}">{html.escape(title)}</a></li>'
            for anchor, title in self._sections
        )
        meta = "<br>".join(html.escape(line) for line in self._meta)
        return "\n".join([
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            f'<p class="meta">{meta}</p>',
            f"<nav><ol>{contents}</ol></nav>" if self._sections else "",
            *self._body,
            "</body></html>",
            "",
        ])

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page atomically (temporary file, then os.replace); returns the path."""
        target = Path(path)
        with atomic_output(target) as temporary:
            temporary.write_text(self.render(), encoding="utf-8")
        return target


# ------------------------------------------------------------------ page layouts
# The pages of `calosim validate`, built from its JSON result and the rendered PNGs.

_EXPLAIN_METRICS = (
    "W1: Wasserstein-1 distance between the distributions of a ZN channel (photon counts) "
    "of the reference and of a compared set, averaged over the 5 channels. MAE: mean "
    "absolute channel difference of paired responses (same particles), defined only for "
    "paired sets. x floor: ratio to the same metric of the noise floor (a second full "
    "simulation of the reference particles), the best a model can reach: 1 is perfect."
)


def validation_page(result: dict[str, Any], pngs: dict[str, bytes]) -> HtmlPage:
    """The validation report of ``result`` (see calosim.report.validation.validate_files)."""
    from calosim.report.validation import compared_entries, present_families

    with_floor = "floor" in result
    meta = [f"reference: {result['reference']}"]
    meta += [f"model {m['label']}: {m['file']}" for m in result["models"]]
    if with_floor:
        meta.append(f"noise floor: {result['floor_file']}")
    page = HtmlPage("calosim validation report", meta)
    entries = compared_entries(result)
    metrics = ([result["floor"]] if with_floor else []) + [m["metrics"] for m in result["models"]]

    page.section("Summary")
    page.paragraph(_EXPLAIN_METRICS)
    _summary_table(page, result, entries, metrics, with_floor)

    page.section("Channels")
    header = ["set"]
    for c in range(1, 6):
        header += [f"W1 ch{c}"] + (["x floor"] if with_floor else [])
    rows = []
    for entry, m in zip(entries, metrics, strict=True):
        ratios = m.get("ratio_to_floor", {}).get("wasserstein_per_channel") or [None] * 5
        row: list[Any] = [entry["label"]]
        for value, ratio in zip(m["wasserstein"]["per_channel"], ratios, strict=True):
            row += [value] + ([_floor_ratio(entry, result, ratio)] if with_floor else [])
        rows.append(row)
    page.table(header, rows, floor_rows=[0] if with_floor else ())
    page.image(pngs["channels.png"], "channel histograms",
               "Per-channel distributions (normalised), ratio to the reference below.")

    page.section("Photon sum and empty responses")
    page.image(pngs["photon_sum.png"], "photon sum",
               "Total photons per response, and the fraction of responses without any photon.")

    page.section("Mean responses")
    page.image(pngs["mean_images.png"], "mean images",
               "Mean photon count per fibre; bottom row: each set minus the reference.")

    page.section("Single responses")
    page.image(pngs["single_responses.png"], "single responses",
               "The first particles of the reference file with a non-empty response: one row "
               "per set holding the same particles (sets of other particles are not shown).")

    page.section("Shower centroids versus impact point")
    _centroid_table(page, result, entries, with_floor)
    page.image(pngs["centroid_residuals.png"], "centroid residuals",
               "Intensity-weighted centroid minus the impact point of the Monte Carlo "
               "transport, for particles hitting the ZN face with a non-empty response.")

    page.section("Energy bins")
    bins = [f"{r['energy_low']:.4g} - {r['energy_high']:.4g} GeV"
            for r in result["models"][0]["energy_bins"]]
    _breakdown_table(page, entries, "energy_bins", bins, range(len(bins)), with_floor)
    page.image(pngs["energy_bins.png"], "energy bins",
               "Equal-population bins of the reference energies.")

    page.section("Particle families")
    families = present_families(result)
    names = [entries[0]["families"][i]["family"] for i in families]
    _breakdown_table(page, entries, "families", names, families, with_floor)
    page.image(pngs["families.png"], "particle families",
               "Families from the PDG id when the file has one, else from mass and charge.")
    return page


def _floor_ratio(entry: dict[str, Any], result: dict[str, Any], ratio: Any) -> Any:
    """The ratio cell of a row: blank for the floor's own row."""
    return "" if entry is result.get("floor_breakdown") else ratio_cell(ratio)


def _summary_table(
    page: HtmlPage, result: dict[str, Any], entries: list[dict[str, Any]],
    metrics: list[dict[str, Any]], with_floor: bool,
) -> None:
    names = ["W1 mean", "MAE", "pooled log W1"]
    keys = ["wasserstein_mean", "mae", "pooled_log_wasserstein"]
    header = ["set", "file", "N", "paired"]
    for name in names:
        header += [name] + (["x floor"] if with_floor else [])
    header.append("empty fraction")
    reference = result["reference_details"]
    blank = [None] * (len(names) * (2 if with_floor else 1))
    rows: list[list[Any]] = [
        [reference["label"], result["reference"], reference["n"], "", *blank,
         reference["empty_fraction"]]
    ]
    for entry, m in zip(entries, metrics, strict=True):
        values = [m["wasserstein"]["mean"], m.get("mae"), m["pooled_log_wasserstein"]]
        row: list[Any] = [entry["label"], entry["file"], m["n_generated"], m["paired"]]
        for value, key in zip(values, keys, strict=True):
            ratio = m.get("ratio_to_floor", {}).get(key)
            row += [value] + ([_floor_ratio(entry, result, ratio)] if with_floor else [])
        row.append(m["observables"]["generated"]["empty_fraction"])
        rows.append(row)
    page.table(header, rows, floor_rows=[1] if with_floor else ())


def _centroid_table(
    page: HtmlPage, result: dict[str, Any], entries: list[dict[str, Any]], with_floor: bool
) -> None:
    header = ["set", "N used", "mean x (cm)", "mean y (cm)", "std x (cm)", "std y (cm)",
              "W1 x (cm)", "W1 y (cm)"] + (["x floor (x)", "x floor (y)"] if with_floor else [])
    rows = []
    for label, stats in [(result["reference_details"]["label"],
                          result["reference_details"]["centroid_residuals"])] + [
        (e["label"], e["centroid_residuals"]) for e in entries
    ]:
        mean = stats["mean_cm"] or [None, None]
        std = stats["std_cm"] or [None, None]
        w1 = stats.get("wasserstein_cm") or [None, None]
        row = [label, stats["n"], *mean, *std, *w1]
        if with_floor:
            ratios = stats.get("ratio_to_floor") or [None, None]
            row += [ratio_cell(r) if "ratio_to_floor" in stats else "" for r in ratios]
        rows.append(row)
    page.table(header, rows, floor_rows=[1] if with_floor else ())


def _breakdown_table(
    page: HtmlPage, entries: list[dict[str, Any]], key: str, names: list[str],
    groups: Sequence[int], with_floor: bool,
) -> None:
    """Rows: groups (energy bins, families); per compared set W1 and MAE (and ratios)."""
    header = ["group", "N reference"]
    for entry in entries:
        ratio = with_floor and entry is not entries[0]
        header += [f"{entry['label']} W1"] + (["x floor"] if ratio else [])
        header += [f"{entry['label']} MAE"] + (["x floor"] if ratio else [])
    rows = []
    for name, group in zip(names, groups, strict=True):
        row: list[Any] = [name, entries[0][key][group]["n_reference"]]
        for entry in entries:
            values = entry[key][group]
            ratios = values.get("ratio_to_floor")
            for metric in ("wasserstein_mean", "mae"):
                row.append(values[metric])
                if ratios is not None:
                    row.append(ratio_cell(ratios[metric]))
        rows.append(row)
    page.table(header, rows)


def continual_page(result: dict[str, Any], pngs: list[bytes]) -> HtmlPage:
    """The report of a continual run: R-matrix heat map, matrix and transfer metrics, and
    the same for the matrix as ratios to each task's noise floor where the run has them."""
    transfer = result["transfer"]
    direction = "lower" if transfer["lower_is_better"] else "higher"
    page = HtmlPage("calosim continual-learning report",
                    [f"run: {result['run']}", f"metric: {transfer['metric']} ({direction} "
                     "is better)"])
    page.section("Transfer metrics")
    page.paragraph(
        "Final average: mean of the last row. Backward transfer: mean change of each "
        "earlier task from just after learning it to the end, counted as an improvement "
        "(negative: forgetting). Forgetting: mean loss of each earlier task from its best "
        "value to the end (positive: forgotten). Forward transfer: mean improvement on a "
        "task before training on it over the untrained baseline (needs a baseline)."
    )
    entries = [("R matrix", result, pngs[0])]
    if result.get("ratio") is not None and len(pngs) > 1:
        page.paragraph("The ratio to the floor divides each column by its task's noise "
                       "floor: the same metric between the task's test responses and a "
                       "second Monte Carlo simulation of its particles (1 is the best a "
                       "simulator can do).")
        entries.append(("R matrix / noise floor", result["ratio"], pngs[1]))
    page.table(["metric", *[title for title, _, _ in entries]], [
        [name, *[entry["transfer"][key] for _, entry, _ in entries]]
        for name, key in (("final average", "final_average"),
                          ("backward transfer", "backward_transfer"),
                          ("forgetting", "forgetting"), ("forward transfer", "forward_transfer"))
    ])
    tasks = transfer["tasks"]
    for title, entry, png in entries:
        page.section(title)
        page.image(png, f"{title} heat map",
                   "R[i][j]: the metric on task j (column) after training task i (row).")
        rows = [[f"after {task}", *values] for task, values in zip(tasks, entry["matrix"],
                                                                    strict=True)]
        if entry.get("baseline") is not None:
            rows.append(["baseline (untrained)", *entry["baseline"]])
        page.table(["", *[f"on {task}" for task in tasks]], rows)
    return page
