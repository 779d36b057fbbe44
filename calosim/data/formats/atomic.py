"""Atomic output: files are written beside their target and renamed into place at the end."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calosim.data.formats.base import _translate_errors


class _TempFiles:
    """Temporary files beside their targets, renamed into place together on commit."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []

    def reserve(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        # 0o666 under the umask: the renamed file gets the permissions of a plain open().
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        self._pairs.append((temp, target))
        return temp

    def commit(self) -> None:
        try:
            for temp, target in self._pairs:
                os.replace(temp, target)
        finally:
            self.discard()

    def discard(self) -> None:
        for temp, _ in self._pairs:
            temp.unlink(missing_ok=True)
        self._pairs.clear()


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On an exception the temporary file is removed and an existing ``path`` is untouched.
    """
    target = Path(path)
    temps = _TempFiles()
    with _translate_errors(target, "write"):
        temp = temps.reserve(target)
    try:
        yield temp
        with _translate_errors(target, "write"):
            temps.commit()
    finally:
        temps.discard()
