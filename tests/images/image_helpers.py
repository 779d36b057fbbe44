"""What the image tests share besides fixtures."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from calosim.cli import cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "images"
DIGITS_CONFIGS = ("digits_e2e_sae", "digits_e2e_sae_uncond", "digits_cvae", "digits_ddpm")


def invoke(*args: str | Path) -> Result:
    """The CLI in-process; stdout and stderr apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result: Result, needle: str) -> None:
    """The error contract: exit 1, a single stderr line that names ``needle``."""
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert needle in result.stderr, result.stderr
