from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from calosim.cli import cli


@pytest.fixture
def run():
    """Invoke the CLI in-process; returns click's Result (stdout and stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> Path:
    """A small Monte Carlo file, made once through the CLI."""
    out = tmp_path_factory.mktemp("sim") / "zn.h5"
    result = CliRunner().invoke(
        cli, ["simulate", "--n", "3000", "--seed", "1", "--out", str(out), "--no-progress"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def assert_one_line_error():
    """The user-facing error contract: non-zero exit, one line on stderr, no traceback."""

    def check(result: Result, *needles: str) -> None:
        assert result.exit_code != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.output
        for needle in needles:
            assert needle in lines[0], lines[0]

    return check
