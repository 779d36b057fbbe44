"""A validation campaign: a generated file against a reference file, beside the floor.

The floor is a second, independent full simulation of the reference particles: the
metrics between the two full simulations are the best any model can reach.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from calosim.data import ZDCDataset, read_dataset
from calosim.errors import CalosimError
from calosim.metrics.zdc import zdc_metrics


def _require_responses(dataset: ZDCDataset, path: Path) -> None:
    if dataset.responses is None:
        raise CalosimError(f"{path}: holds particles only; validation needs responses")


def _paired(a: ZDCDataset, b: ZDCDataset) -> bool:
    """Same particles in the same order: the paired metric (MAE) is meaningful."""
    return a.particles.shape == b.particles.shape and bool(
        np.allclose(a.particles, b.particles, rtol=1e-6, atol=0)
    )


def _metrics(
    reference: ZDCDataset, generated: ZDCDataset, floor: dict | None, parity: str
) -> dict[str, Any]:
    metrics = zdc_metrics(reference.responses, generated.responses, floor=floor, parity=parity)
    if not _paired(reference, generated):
        # MAE compares response i with response i: only valid for the same particles.
        metrics.pop("mae", None)
        metrics.get("ratio_to_floor", {}).pop("mae", None)
        metrics["paired"] = False
    else:
        metrics["paired"] = True
    return metrics


def validate_files(
    reference: str | Path,
    generated: str | Path,
    *,
    floor: str | Path | None = None,
    out_dir: str | Path | None = None,
    parity: str = "odd",
) -> dict[str, Any]:
    """Metrics of ``generated`` against ``reference`` (and of ``floor`` against it).

    With ``out_dir``, writes metrics.json and the validation PNGs there.
    """
    ref_path, gen_path = Path(reference), Path(generated)
    ref, gen = read_dataset(ref_path), read_dataset(gen_path)
    _require_responses(ref, ref_path)
    _require_responses(gen, gen_path)
    result: dict[str, Any] = {"reference": str(ref_path), "generated": str(gen_path)}
    floor_data = None
    if floor is not None:
        floor_path = Path(floor)
        floor_data = read_dataset(floor_path)
        _require_responses(floor_data, floor_path)
        result["floor_file"] = str(floor_path)
        result["floor"] = _metrics(ref, floor_data, None, parity)
    result["metrics"] = _metrics(ref, gen, result.get("floor"), parity)
    if out_dir is not None:
        from calosim.report.plots import write_validation_plots

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plots = write_validation_plots(
            ref.responses, gen.responses, out,
            floor_generated=None if floor_data is None else floor_data.responses, parity=parity,
        )
        result["plots"] = [str(p) for p in plots]
        write_json_atomic(out / "metrics.json", result)
    return result


def write_json_atomic(path: Path, payload: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: each metric, and with a floor, the floor and the ratio to it."""
    metrics, floor = result["metrics"], result.get("floor")
    ratios = metrics.get("ratio_to_floor", {})

    def row(name: str, pick: Any, ratio: Any) -> str | None:
        value = pick(metrics)
        if value is None:
            return None
        line = f"{name:<16}{value:>12.4g}"
        if floor is not None:
            shown = "-" if ratio is None else f"{ratio:.2f}"
            line += f"{pick(floor):>12.4g}{shown:>9}"
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
