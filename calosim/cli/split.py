"""`calosim split`: the seeded train/val/test split as files.

The trainer splits its data with the same function, seeded with the run's seed, and
keeps the indices in RUN_DIR/split.npz: `--run RUN_DIR` (or `--seed` with the run's seed)
writes exactly the particles a model trained on DATA never saw to `test.h5`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from calosim.cli.options import PATH, SEED, creator_command, finite_float
from calosim.errors import CalosimError

DEFAULT_SPLIT_SEED = 1  # the seed of the shipped configs (configs/*/*.yaml: `seed: 1`)
PARTS = ("train", "val", "test")


def _write_periods(dataset: Any, data: Path, out_dir: Path, n_tasks: int) -> None:
    from calosim.data import energy_task_indices, write_dataset

    out_dir.mkdir(parents=True, exist_ok=True)
    for period, rows in enumerate(energy_task_indices(dataset.column("Energy"), n_tasks)):
        path = out_dir / f"period_{period + 1}.h5"
        write_dataset(path, dataset.subset(rows), attrs={
            "source_creator": dataset.attrs.get("creator", ""), "creator": creator_command(),
            "split_of": str(data), "energy_period": f"{period + 1} of {n_tasks}"})
        click.echo(f"period {period + 1}: {len(rows)} responses -> {path}")


def _run_split(run_dir: Path, data: Path, particles: Any) -> dict:
    """The split ``run_dir`` recorded, once DATA is known to be the data it indexes."""
    import numpy as np

    from calosim.training.checkpoint import data_fingerprint

    path = run_dir / "split.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            parts = {name: stored[name] for name in PARTS}
            recorded = str(stored["data_fingerprint"]) if "data_fingerprint" in stored else None
    except (OSError, KeyError, ValueError) as error:
        raise CalosimError(f"{path}: not a training run's split ({error})") from None
    if recorded is not None and recorded != data_fingerprint(particles):
        raise CalosimError(f"{data}: not the data the run {run_dir} was trained on (its "
                           "particles differ from those the split indexes)")
    if max(int(rows.max(initial=-1)) for rows in parts.values()) >= len(particles):
        raise CalosimError(f"{path}: indices beyond the {len(particles)} rows of the data: "
                           "another dataset?")
    return parts


@click.command("split")
@click.argument("data", type=PATH)
@click.option("--out-dir", type=PATH, required=True)
@click.option("--seed", type=SEED, default=DEFAULT_SPLIT_SEED, show_default=True,
              help="Split seed: the training run's seed.")
@click.option("--run", "run_dir", type=PATH, default=None,
              help="Use the split a training run recorded (RUN_DIR/split.npz).")
@click.option("--fractions", nargs=3, type=finite_float(0, 1), default=(0.8, 0.1, 0.1),
              show_default=True, help="train, val and test fractions.")
@click.option("--energy-tasks", type=click.IntRange(min=1), default=None,
              help="Instead: cut DATA into this many energy periods (the continual tasks), "
                   "OUT_DIR/period_K.h5, low to high energy.")
def command(
    data: Path, out_dir: Path, seed: int, run_dir: Path | None,
    fractions: tuple[float, float, float], energy_tasks: int | None,
) -> None:
    """Write DATA's train, val and test parts to OUT_DIR/{train,val,test}.h5, or with
    --energy-tasks its energy periods, each to be learnt by a continual run period by
    period (`calosim train CONFIG --data OUT_DIR/period_K.h5 --out RUN --new-period`)."""
    import numpy as np

    from calosim.data import read_dataset, split_indices, write_dataset

    dataset = read_dataset(data)
    if energy_tasks is not None:
        _write_periods(dataset, data, out_dir, energy_tasks)
        return
    if run_dir is not None:
        parts = _run_split(run_dir, data, dataset.particles)
    else:
        parts = split_indices(len(dataset), seed, fractions)
    out_dir.mkdir(parents=True, exist_ok=True)
    attrs = {**dataset.attrs, "source_creator": dataset.attrs.get("creator", ""),
             "creator": creator_command(), "split_of": str(data),
             "split_seed": seed if run_dir is None else f"from {run_dir}",
             "split_fractions": list(fractions)}
    for name in PARTS:
        rows = np.sort(parts[name])
        path = out_dir / f"{name}.h5"
        write_dataset(path, dataset.subset(rows), attrs={**attrs, "split_part": name})
        click.echo(f"{name}: {len(rows)} responses -> {path}")
