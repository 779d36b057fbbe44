"""Atomic output: files are written beside their target and renamed into place at the end.

A temporary file is named ``.<target name>.<host>-<pid>-<random>.tmp``, with the target
name shortened so that any legal target name gives a legal temporary name. A process
killed before it could clean up (SIGKILL, power loss) leaves its temporaries behind; the
next writer of the same target on the same host removes those whose process is gone.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calosim.data.formats.base import _translate_errors
from calosim.interrupts import raise_if_interrupted

# the longest file name of the common Linux file systems, in bytes
NAME_MAX = 255
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_PATTERN = re.compile(r"^\.(?P<name>.*)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def _shortened(name: str, tag: str) -> str:
    """``name`` cut so that the temporary name with ``tag`` fits NAME_MAX bytes."""
    return name.encode()[: NAME_MAX - len(tag) - len("...tmp")].decode(errors="ignore")


def temporary_name(target: Path) -> str:
    """A fresh temporary name for ``target``, in its directory, at most NAME_MAX bytes."""
    tag = f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
    return f".{_shortened(target.name, tag)}.{tag}.tmp"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of ``target`` left by processes of this host that are gone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name)
        if match is None or match["host"] != _HOST:
            continue
        tag = entry.name[len(match["name"]) + 2 : -len(".tmp")]
        if match["name"] == _shortened(target.name, tag) and not _process_alive(int(match["pid"])):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


class _TempFiles:
    """Temporary files beside their targets, renamed into place together on commit."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []

    def reserve(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        temp = target.with_name(temporary_name(target))
        # 0o666 under the umask: the renamed file gets the permissions of a plain open().
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        self._pairs.append((temp, target))
        return temp

    def commit(self) -> None:
        try:
            raise_if_interrupted()  # an interrupted run never writes or replaces an output
            for temp, _ in self._pairs:  # on disk before any rename: no torn file on a crash
                handle = os.open(temp, os.O_RDONLY)
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)
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

    On an exception (KeyboardInterrupt included) the temporary file is removed and an
    existing ``path`` is untouched.
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
