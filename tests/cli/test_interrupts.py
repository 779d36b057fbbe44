"""Stop signals end a run promptly, with 128 + the signal's number, and never leave a
replaced output or a temporary file; temporaries of a killed run are cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calosim import interrupts
from calosim.data.formats.atomic import _HOST, _shortened, atomic_output, temporary_name


def _temporaries(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_simulate_and_keeps_the_old_output(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "zn.h5"
    out.write_bytes(b"the output of an earlier run")
    process = subprocess.Popen(
        [sys.executable, "-m", "calosim", "simulate", "--n", "2000000", "--seed", "1",
         "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not _temporaries(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temporaries(tmp_path), "the run never started writing"
    time.sleep(1.0)  # into the simulation proper
    process.send_signal(signum)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 20
    assert process.returncode == 128 + signum
    assert stderr.strip().splitlines() == [f"calosim: interrupted by {signal.Signals(signum).name}"]
    assert out.read_bytes() == b"the output of an earlier run"
    assert _temporaries(tmp_path) == []


def test_an_interrupt_whose_exception_was_lost_blocks_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    monkeypatch.setattr(interrupts, "_received", [signal.SIGINT])
    with pytest.raises(interrupts.Interrupted), atomic_output(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "old"
    assert _temporaries(tmp_path) == []


def _dead_pid() -> int:
    pid = 2**22 + 1  # above the largest pid_max Linux allows
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


def test_the_next_writer_removes_temporaries_of_a_killed_run(tmp_path: Path) -> None:
    target = tmp_path / "zn.h5"
    tag = f"{_HOST}-{_dead_pid()}-0123abcd"
    stale = tmp_path / f".{_shortened(target.name, tag)}.{tag}.tmp"
    stale.write_bytes(b"half a file")
    live = tmp_path / temporary_name(target)  # this process's: kept
    live.write_bytes(b"")
    other = tmp_path / f".other.h5.{tag}.tmp"  # another target's: kept
    other.write_bytes(b"")
    with atomic_output(target) as temporary:
        temporary.write_text("done")
    assert target.read_text() == "done"
    assert _temporaries(tmp_path) == sorted([live, other])


def test_the_longest_legal_output_name_can_be_written(tmp_path: Path) -> None:
    target = tmp_path / ("z" * 252 + ".h5")
    assert len(temporary_name(target).encode()) <= 255
    with atomic_output(target) as temporary:
        temporary.write_text("done")
    assert target.read_text() == "done"
