"""`calosim train`: train a model from a YAML config into a run directory."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from calosim.cli.options import PATH, device_option, finite_float, progress_option, seed_option


def _check_new_period(loaded: dict, data: Path | None, out_dir: Path | None, resume: bool,
                      max_minutes: float | None, distributed: bool) -> None:
    from calosim.errors import CalosimError

    if "continual" not in loaded or isinstance(loaded.get("data"), dict):
        raise CalosimError("--new-period needs a continual config of ZN data (configs/continual/)")
    if data is None or out_dir is None:
        raise CalosimError("--new-period needs --data (the period's file) and --out (the run)")
    if resume or max_minutes is not None or distributed:
        raise CalosimError("--new-period takes no --resume or --max-minutes and runs without "
                           "torchrun (the period's budget is training.max_minutes)")


@click.command("train")
@click.argument("config", type=PATH)
@click.argument("overrides", nargs=-1)
@click.option("--data", type=PATH, default=None,
              help="Training data file (default: the config's `data:`).")
@click.option("--out", "out_dir", type=PATH, default=None,
              help="Run directory (default: runs/<config name>).")
@click.option("--max-minutes", type=finite_float(0, min_open=True), default=None,
              help="Time budget for the epochs: stop cleanly after this many minutes, keeping "
                   "the best model (a model's refinement phase, if any, follows).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--new-period", is_flag=True,
              help="Continual configs: learn --data as the next data-taking period of the run "
                   "in --out (starting it if there is none), from that file alone.")
@seed_option
@device_option
@progress_option
def command(
    config: Path, overrides: tuple[str, ...], data: Path | None, out_dir: Path | None,
    max_minutes: float | None, resume: bool, new_period: bool, seed: int | None, device: str,
    progress: bool,
) -> None:
    """Train the model of CONFIG. OVERRIDES are `key.path=value` pairs (YAML values),
    e.g. `training.epochs=5 model.latent_dim=16`. A config with a `continual:` section
    runs its whole task sequence (configs/continual/). Under
    `torchrun --nproc_per_node N -m calosim train ...` N processes train data-parallel.
    With --new-period a continual config learns one period's file per command."""
    from calosim.training.distributed import context_from_environment
    from calosim.training.run import load_config
    from calosim.training.run_lock import run_directory_lock

    loaded = load_config(config)
    context = context_from_environment(device)
    if new_period:
        _check_new_period(loaded, data, out_dir, resume, max_minutes, context.active)
    out_dir = out_dir or Path("runs") / config.stem
    # every process of a torchrun run writes the same directory: only the first locks it
    with run_directory_lock(out_dir) if context.is_main else contextlib.nullcontext():
        _train(config, loaded, overrides, data, out_dir, max_minutes, resume, new_period, seed,
               device, progress, context)


def _train(config: Path, loaded: dict, overrides: tuple[str, ...], data: Path | None,
           out_dir: Path, max_minutes: float | None, resume: bool, new_period: bool,
           seed: int | None, device: str, progress: bool, context: Any) -> None:
    from calosim.errors import CalosimError
    from calosim.training.run import train_from_config

    if new_period:
        from calosim.continual.periods import train_next_period

        period = train_next_period(config, data=data, out_dir=out_dir, seed=seed,
                                   overrides=overrides, device=device, progress=progress)
        click.echo(f"model: {period.model_path}")
        click.echo(f"run directory: {period.run_dir} ({period.metrics['tasks_learnt']} periods)")
        return
    if "continual" in loaded and isinstance(loaded.get("data"), dict):
        # a continual run on an image benchmark (configs/images/continual_*.yaml)
        from calosim.images.continual import train_image_continual as train
    elif "continual" in loaded:
        if context.active:
            raise CalosimError("continual runs train in one process; start them without torchrun")
        from calosim.continual.run import train_continual_from_config as train
    elif isinstance(loaded.get("data"), dict):
        # image benchmarks name their data as a section (configs/images/)
        from calosim.images.train import train_images_from_config as train
    else:
        train = train_from_config
    result = train(
        config, data=data, out_dir=out_dir, seed=seed, overrides=overrides,
        max_minutes=max_minutes, resume=resume, device=device, progress=progress,
    )
    if not context.is_main:
        return
    click.echo(f"model: {result.model_path}")
    click.echo(f"run directory: {result.run_dir}")
