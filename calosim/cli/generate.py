"""`calosim generate`: a trained model (or the MC) over a particle file, streamed to disk.

Plain runs write OUT in one go (atomically). Sharded runs (`--shard I/N`, `--shards N`,
`--dask`) are resumable: see calosim.production.shards for the files and the manifest.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from calosim.cli.options import (
    PATH,
    allow_out_of_range_option,
    chunk_option,
    creator_command,
    device_option,
    progress_option,
    resolve_seed,
    seed_option,
)
from calosim.errors import CalosimError


@click.command("generate")
@click.option("--model", required=True, help="Model file (model.pt) or built-in simulator name.")
@click.option(
    "--particles", type=PATH, required=True,
    help="Particle file: canonical .h5, .root, .npz or .csv with the 9 named columns.",
)
@click.option("--out", type=PATH, required=True, help="Output .h5 or .root.")
@click.option(
    "--n-per-particle", type=click.IntRange(1), default=1, show_default=True,
    help="K independent responses per particle: each particle is repeated K times in a row; "
    "copy k of particle i draws its randomness as global index i*K+k, so the output does "
    "not depend on how the run is sharded.",
)
@click.option(
    "--shard", default=None, metavar="I/N",
    help="Produce only shard I of N (I from 0; shards are whole blocks of 1024 particles), "
    "e.g. run.shard-0003-of-0008.h5 for --out run.h5, recorded in run.h5.manifest.json: for "
    "batch array jobs (then `--shards N` merges). Needs --seed.",
)
@click.option(
    "--shards", type=click.IntRange(1), default=None,
    help="Cut the run into N resumable shards, produce the missing ones (here, or with "
    "--dask on a cluster) and merge them. Default with --dask: about 131k responses per "
    "shard, or the manifest's N when resuming.",
)
@click.option("--dask", is_flag=True, help="Run the shards on a Dask distributed cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Address of a running Dask scheduler (implies --dask). Default: a local "
              "cluster.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Worker processes of the local Dask cluster (default: one per CPU core).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch CPU threads of each process that simulates: this one, or each "
              "Dask worker (default: torch's choice here; 1 per worker of a local cluster).")
@click.option("--merge/--no-merge", default=True, show_default=True,
              help="When all shards are done: merge them into OUT, or leave them as listed in "
              "the manifest.")
@click.option("--keep-shards", is_flag=True, help="Keep the shard files after merging them.")
@click.option(
    "--resume/--restart", default=True, show_default=True,
    help="Sharded runs: skip shards already done and valid (missing or corrupt ones are "
    "redone), or redo this invocation's shards (a manifest of another run is replaced).",
)
@allow_out_of_range_option
@seed_option
@chunk_option
@device_option
@progress_option
def command(
    model: str, particles: Path, out: Path, n_per_particle: int, shard: str | None,
    shards: int | None, dask: bool, scheduler: str | None, workers: int | None,
    threads: int | None, merge: bool, keep_shards: bool, resume: bool,
    allow_out_of_range: bool, seed: int | None, chunk_size: int, device: str, progress: bool,
) -> None:
    """Generate responses for every particle with MODEL; the output holds particles,
    responses and the 5 channels, readable by `calosim validate`."""
    dask = dask or scheduler is not None
    if threads is not None and not dask:
        import torch

        torch.set_num_threads(threads)
    if shard is None and shards is None and not dask:
        _check_plain_options(merge=merge, keep_shards=keep_shards, resume=resume,
                             workers=workers)
        _generate_plain(model, particles, out, n_per_particle, seed, chunk_size, device,
                        progress, allow_out_of_range)
        return
    if allow_out_of_range and dask:
        raise CalosimError("--allow-out-of-range does not reach Dask workers: run without --dask")
    if shard is not None and (shards is not None or dask):
        raise CalosimError("--shard I/N produces one shard, --shards and --dask produce all of "
                           "them: give one or the other")
    if workers is not None and not dask:
        raise CalosimError("--workers sizes the local Dask cluster: it needs --dask")
    _generate_sharded(
        model, particles, out, n_per_particle=n_per_particle, shard=shard, n_shards=shards,
        dask=dask, scheduler=scheduler, workers=workers, threads=threads, merge=merge,
        keep_shards=keep_shards,
        restart=not resume, seed=seed, chunk_size=chunk_size, device=device, progress=progress,
        allow_out_of_range=allow_out_of_range,
    )


def _check_plain_options(*, merge: bool, keep_shards: bool, resume: bool,
                         workers: int | None) -> None:
    given = [name for name, used in (("--no-merge", not merge), ("--keep-shards", keep_shards),
                                     ("--restart", not resume), ("--workers", workers))
             if used]
    if given:
        raise CalosimError(f"{given[0]} applies to sharded runs (--shard, --shards or --dask)")


def _generate_plain(model: str, particles: Path, out: Path, n_per_particle: int,
                    seed: int | None, chunk_size: int, device: str, progress: bool,
                    allow_out_of_range: bool = False) -> None:
    from calosim.production.stream import simulate_rows
    from calosim.simulators.loading import load

    simulator = load(model, device=device, allow_out_of_range=allow_out_of_range)
    seed = resolve_seed(seed)
    summary = simulate_rows(
        simulator, particles, out, seed=seed, n_per_particle=n_per_particle,
        chunk_size=chunk_size, progress=progress, creator=creator_command(seed=seed),
    )
    rate = summary.n_responses / max(summary.seconds, 1e-9)
    click.echo(
        f"wrote {summary.n_responses} responses to {summary.out} "
        f"({summary.seconds:.1f} s, {rate:,.0f} responses/s, seed {seed})"
    )


def _generate_sharded(
    model: str, particles: Path, out: Path, *, n_per_particle: int, shard: str | None,
    n_shards: int | None, dask: bool, scheduler: str | None, workers: int | None,
    threads: int | None, merge: bool, keep_shards: bool, restart: bool, seed: int | None,
    chunk_size: int, device: str, progress: bool, allow_out_of_range: bool = False,
) -> None:
    from calosim.production.shards import ShardSpec, local_producer, prepare_run, run_sharded
    from calosim.simulators.loading import load

    spec = ShardSpec.parse(shard) if shard is not None else None
    simulator = load(model, device=device, allow_out_of_range=allow_out_of_range)
    plan = prepare_run(
        model, particles, out, simulator=simulator, seed=seed,
        n_shards=spec.count if spec else n_shards, n_per_particle=n_per_particle,
        chunk_size=chunk_size, device=device, restart=restart, draw_seed=spec is None,
    )
    if seed is None:
        click.echo(f"calosim: using seed {plan.seed}", err=True)
    plan = replace(plan, creator=creator_command(seed=plan.seed))
    options = {"merge": merge, "keep_shards": keep_shards, "redo": restart,
               "progress": progress}
    if dask:
        from calosim.production.distributed import dask_client, dask_producer

        if threads is None and scheduler is None:
            # One thread a worker: workers, not threads, share out the cores; torch's
            # spinning threads in one worker slow each other on cores shared with others.
            threads = 1
        with dask_client(scheduler, workers) as client:
            producer = dask_producer(client, torch_threads=threads, progress=progress)
            summary = run_sharded(plan, producer=producer, **options)
    else:
        indices = [spec.index] if spec else None
        summary = run_sharded(plan, producer=local_producer(simulator, progress),
                              indices=indices, **options)
    for index, problem in sorted(summary.redone.items()):
        click.echo(f"calosim: shard {index}/{plan.n_shards} redone ({problem})", err=True)
    rate = summary.n_responses / max(summary.seconds, 1e-9)
    click.echo(
        f"{len(summary.produced)} of {plan.n_shards} shard(s) produced "
        f"({summary.n_responses} responses, {summary.seconds:.1f} s, {rate:,.0f} responses/s), "
        f"{len(summary.skipped)} already done; seed {plan.seed}"
    )
    if summary.merged:
        click.echo(f"merged into {summary.out}")
    else:
        click.echo(f"shards listed in {summary.manifest}")
