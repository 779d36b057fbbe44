"""`calosim split`: the seeded train/val/test split as files.

The trainer splits its data with the same function and the same default seed, so
`test.h5` here holds exactly the particles a model trained on DATA never saw.
"""

from __future__ import annotations

from pathlib import Path

import click

from calosim.cli.options import creator_command

DEFAULT_SPLIT_SEED = 0


@click.command("split")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), required=True)
@click.option("--seed", type=int, default=DEFAULT_SPLIT_SEED, show_default=True,
              help="Split seed (the trainer's `split_seed`).")
@click.option("--fractions", nargs=3, type=click.FloatRange(0, 1), default=(0.8, 0.1, 0.1),
              show_default=True, help="train, val and test fractions.")
def command(data: Path, out_dir: Path, seed: int, fractions: tuple[float, float, float]) -> None:
    """Write DATA's train, val and test parts to OUT_DIR/{train,val,test}.h5."""
    import numpy as np

    from calosim.data import read_dataset, split_indices, write_dataset

    dataset = read_dataset(data)
    parts = split_indices(len(dataset), seed, fractions)
    out_dir.mkdir(parents=True, exist_ok=True)
    attrs = {**dataset.attrs, "source_creator": dataset.attrs.get("creator", ""),
             "creator": creator_command(), "split_of": str(data), "split_seed": seed,
             "split_fractions": list(fractions)}
    for name, rows in parts.items():
        path = out_dir / f"{name}.h5"
        write_dataset(path, dataset.subset(np.sort(rows)), attrs={**attrs, "split_part": name})
        click.echo(f"{name}: {len(rows)} responses -> {path}")
