"""Shards of a run on a Dask distributed cluster.

Each shard is one task (``calosim.production.shards.produce_shard``): the worker loads
the model once per process, writes the shard file atomically and returns its record;
this process records every shard in the manifest as it completes, so a run that dies
keeps its finished shards and resumes from there. Workers need the model, the particle
file and the output directory at the same paths (a shared file system), which a local
cluster always has.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from tqdm import tqdm

from calosim.errors import CalosimError
from calosim.production.shards import Producer, ShardPlan, ShardRecord, produce_shard

CONNECT_TIMEOUT_S = 30


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: of the scheduler at ``scheduler``, or of a new local cluster
    of ``workers`` processes (one thread each; default: one per CPU core). Both are
    closed on leaving the block, whatever happens."""
    from distributed import Client, LocalCluster

    if scheduler is not None and workers is not None:
        raise CalosimError("--workers sizes a local cluster; a --scheduler's cluster is "
                           "sized where it was started")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CalosimError(f"cannot reach the Dask scheduler {scheduler}: {reason}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, processes=True,
                           threads_per_worker=1, dashboard_address=None)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def dask_producer(client: Any, *, torch_threads: int | None = None,
                  progress: bool = True) -> Producer:
    """A shard producer that runs each shard as a task on ``client``'s cluster and yields
    the records as the tasks complete (a tqdm bar counts completed shards)."""
    from distributed import as_completed

    def produce(plan: ShardPlan, indices: Sequence[int]) -> Iterator[ShardRecord]:
        task_plan = replace(plan, torch_threads=torch_threads)
        futures = [
            client.submit(produce_shard, task_plan, index, pure=False,
                          key=f"calosim-{plan.spec(index).label}-{secrets.token_hex(6)}")
            for index in indices
        ]
        try:
            with tqdm(total=len(futures), unit="shard", desc="shards",
                      disable=None if progress else True) as bar:
                for future in as_completed(futures):
                    yield future.result()
                    bar.update(1)
        finally:
            client.cancel(futures)  # a failed shard stops the run; the done ones are kept

    return produce
