"""`calosim images-floor` and `calosim images-bench`: the image benchmarks' floor, the
classifier's accuracy, and trained image models side by side."""

from __future__ import annotations

import json
from pathlib import Path

import click

from calosim.cli.options import PATH, SEED, device_option
from calosim.data.images import DEFAULT_DIGITS_SIZE, IMAGE_DATASETS
from calosim.metrics.images import DEFAULT_FLOOR_SAMPLES


@click.command("images-floor")
@click.option("--dataset", type=click.Choice(IMAGE_DATASETS), required=True,
              help="Image benchmark.")
@click.option("--data-dir", type=PATH, default=None,
              help="Directory of the IDX files (default for fashion-mnist: Debian's "
                   "dataset-fashion-mnist package; required for mnist).")
@click.option("--digits-size", type=click.IntRange(8), default=DEFAULT_DIGITS_SIZE,
              show_default=True, help="Side the 8 x 8 digits are upsampled to (8: as is).")
@click.option("--samples", type=click.IntRange(4), default=DEFAULT_FLOOR_SAMPLES,
              show_default=True, help="Images per set (train and test) in the metrics.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the samples drawn (and of the digits' train/test split).")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def command(dataset: str, data_dir: Path | None, digits_size: int, samples: int, seed: int,
            as_json: bool) -> None:
    """FID, precision and recall of real test images against real training images.

    No generator scores better than this floor with as many samples. Features come from a
    LeNet classifier trained once per dataset and cached ($CALOSIM_CACHE or
    ~/.cache/calosim); its test accuracy is printed too.
    """
    from calosim.data.images import load_image_benchmark
    from calosim.metrics.images import image_floor

    splits = load_image_benchmark(dataset, data_dir=data_dir, digits_size=digits_size,
                                  seed=seed)
    floor = image_floor(splits, n_samples=samples, seed=seed,
                        announce=lambda text: click.echo(f"calosim: {text}", err=True))
    if as_json:
        click.echo(json.dumps(floor, indent=2))
        return
    height, width = floor["image_shape"]
    click.echo(f"dataset              {floor['dataset']} ({height} x {width}; "
               f"{floor['n_train']} train, {floor['n_test']} test)")
    click.echo(f"floor, real test vs real train ({floor['n_candidate']} images each, "
               f"k = {floor['k']}):")
    click.echo(f"  FID                {floor['fid']:.4g}")
    click.echo(f"  precision          {floor['precision']:.4f}")
    click.echo(f"  recall             {floor['recall']:.4f}")
    click.echo(f"classifier accuracy  {floor['classifier_accuracy']:.4f}")


@click.command("images-bench")
@click.argument("run_dirs", nargs=-1, required=True, type=PATH)
@click.option("--samples", type=click.IntRange(4), default=None,
              help="Images generated per model, scored against as many training images "
                   "(default: the first run's evaluation.samples).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the reference images drawn and of the generators' noise.")
@click.option("--json", "json_out", type=PATH, default=None,
              help="Also write the table as JSON to this file.")
@device_option
def bench_command(run_dirs: tuple[Path, ...], samples: int | None, seed: int, json_out: Path | None,
                  device: str) -> None:
    """FID, precision, recall and seconds of the image models in RUN_DIRS (runs of
    `calosim train configs/images/...` on one benchmark), with the real-data floor."""
    from calosim.images.bench import benchmark_runs, format_table
    from calosim.training.trainer import write_text_atomic

    result = benchmark_runs(run_dirs, samples=samples, seed=seed, device=device,
                            announce=lambda text: click.echo(f"calosim: {text}", err=True))
    click.echo(format_table(result))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
