"""One table comparing continual runs (same split and seed, different strategies).

Each run directory holds metrics.json (written by train_continual_from_config) and the R
matrices, read back with calosim.metrics.continual so the figures are the files' own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calosim.continual.evaluation import PRIMARY_METRIC
from calosim.errors import DataFormatError
from calosim.metrics.continual import read_r_matrix, transfer_metrics

COLUMNS = (
    ("strategy", "strategy"),
    ("final_w1_ratio", "final avg W1 / floor"),
    ("worst_w1_ratio", "worst task W1 / floor"),
    ("final_mae_ratio", "final avg MAE / floor"),
    ("ratio_backward_transfer", "BWT of W1 / floor"),
    ("final_w1", "final avg W1"),
    ("vs_joint", "/ joint"),
    ("backward_transfer", "BWT"),
    ("forgetting", "forgetting"),
    ("forward_transfer", "FWT"),
    ("final_pooled_log_w1", "pooled log W1"),
    ("memory_kb", "memory kB"),
    ("train_minutes", "train min"),
)


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """Strategy, transfer metrics of both R matrices, memory and time of one run."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        message = f"{path}: no such file (is {run_dir} a finished continual run?)"
        raise DataFormatError(message) from None
    except (OSError, json.JSONDecodeError) as error:
        raise DataFormatError(f"{path}: cannot read ({error})") from None
    primary = transfer_metrics(read_r_matrix(run_dir))
    pooled = transfer_metrics(read_r_matrix(run_dir / "pooled_log_w1"))
    ratios: dict[str, Any] = {}
    if (run_dir / f"{PRIMARY_METRIC}_ratio").is_dir():
        w1_ratio = read_r_matrix(run_dir / f"{PRIMARY_METRIC}_ratio")
        w1_transfer = transfer_metrics(w1_ratio)
        ratios = {
            "final_w1_ratio": w1_transfer["final_average"],
            "worst_w1_ratio": float(w1_ratio.matrix[-1].max()),
            "final_mae_ratio": transfer_metrics(
                read_r_matrix(run_dir / "channel_mae_ratio"))["final_average"],
            "ratio_backward_transfer": w1_transfer["backward_transfer"],
        }
    return {
        "strategy": metrics["strategy"],
        **ratios,
        "final_w1": primary["final_average"],
        "backward_transfer": primary["backward_transfer"],
        "forgetting": primary["forgetting"],
        "forward_transfer": primary["forward_transfer"],
        "final_pooled_log_w1": pooled["final_average"],
        "memory_kb": metrics["memory_bytes"] / 1000,
        "train_minutes": metrics["train_seconds"] / 60,
        "metric": primary["metric"],
    }


def comparison_rows(run_dirs: Sequence[str | Path], reference: str = "joint"
                    ) -> list[dict[str, Any]]:
    """run_summary of each run, best final W1 first (the ratio to the floor where the runs
    have floors), with the ratio to ``reference``'s final W1 (None when that strategy is
    not among the runs)."""
    rows = [run_summary(d) for d in run_dirs]
    bound = next((r["final_w1"] for r in rows if r["strategy"] == reference), None)
    for row in rows:
        row["vs_joint"] = None if not bound else row["final_w1"] / bound
    return sorted(rows, key=lambda r: r.get("final_w1_ratio") or r["final_w1"])


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of comparison_rows (W1: mean per-channel W1 on photon counts,
    averaged over the tasks after the last one; lower is better)."""
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" if key == "strategy" else "---:" for key, _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def matrix_table(run_dir: str | Path, metric_dir: str = "") -> str:
    """The R matrix of a run as a Markdown table (rows: after training task i; columns:
    evaluated on task j), with the untrained baseline as the first row."""
    run = read_r_matrix(Path(run_dir) / metric_dir)
    lines = ["| after \\ on | " + " | ".join(run.tasks) + " |",
             "|---|" + "---:|" * run.n_tasks]
    if run.baseline is not None:
        lines.append("| untrained | " + " | ".join(_cell(float(v)) for v in run.baseline) + " |")
    for name, row in zip(run.tasks, run.matrix, strict=True):
        lines.append(f"| {name} | " + " | ".join(_cell(float(v)) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
