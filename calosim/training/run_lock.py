"""One writer per run directory: an advisory lock held for the whole run.

The lock is ``flock`` on ``RUN/.calosim.lock``: the kernel releases it when its process
ends, however it ends, so a killed run never leaves a stale lock. The file itself stays
(removing it would let two later runs lock two different files).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calosim.errors import CalosimError

LOCK_NAME = ".calosim.lock"


@contextmanager
def run_directory_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (created if missing) for the block; a second writer
    gets one CalosimError line. A directory this call created and nothing else wrote
    into is removed again when the block fails."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise CalosimError(f"{run_dir}: cannot create the run directory "
                           f"({error.strerror or error})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            raise CalosimError(f"{run_dir}: another calosim run (process {holder}) is writing "
                               "this directory; wait for it or choose another output") from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        except BaseException:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
                (run_dir / LOCK_NAME).unlink(missing_ok=True)
                run_dir.rmdir()
            raise
    finally:
        os.close(handle)
