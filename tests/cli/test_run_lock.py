"""A run directory has one writer at a time; a second gets one line and writes nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from calosim.errors import CalosimError
from calosim.training.run_lock import LOCK_NAME, run_directory_lock


def _hold_lock_in_another_process(run_dir: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from calosim.training.run_lock import run_directory_lock
        with run_directory_lock({str(run_dir)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _stop(holder: subprocess.Popen) -> None:
    holder.kill()
    holder.communicate()


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = _hold_lock_in_another_process(run_dir)
    try:
        with pytest.raises(CalosimError, match=rf"another calosim run \(process {holder.pid}\)"):
            with run_directory_lock(run_dir):
                (run_dir / "config.yaml").write_text("mixed")
        assert not (run_dir / "config.yaml").exists()
    finally:
        _stop(holder)
    with run_directory_lock(run_dir):  # the kernel released the killed holder's lock
        (run_dir / "config.yaml").write_text("mine")


def test_a_failed_start_leaves_no_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(CalosimError), run_directory_lock(run_dir):
        raise CalosimError("bad config")
    assert not run_dir.exists()
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"")
    with pytest.raises(CalosimError), run_directory_lock(run_dir):
        raise CalosimError("bad config")
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([LOCK_NAME, "model.pt"])


def test_two_trainings_into_one_directory(run, simulated, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = _hold_lock_in_another_process(run_dir)
    try:
        config = Path(__file__).parents[2] / "configs" / "zdc" / "e2e_sae.yaml"
        result = run("train", config, "--data", simulated, "--out", run_dir)
    finally:
        _stop(holder)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"calosim: error: {run_dir}: another calosim run (process {holder.pid}) is writing "
        "this directory; wait for it or choose another output"]
    assert [p.name for p in run_dir.iterdir()] == [LOCK_NAME]
