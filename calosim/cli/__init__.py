"""The `calosim` command: a thin click layer over the library.

Errors a user causes print one line on stderr and exit 1 (2 for a bad option or
argument); `--debug` shows tracebacks. SIGINT and SIGTERM exit 130 and 143 with one line
(calosim.interrupts).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

import click

from calosim import interrupts
from calosim._version import __version__
from calosim.errors import CalosimError


class _Commands(click.Group):
    """Turns exceptions into one line on stderr unless --debug was given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except click.UsageError as err:
            command = f"{err.ctx.command_path} --help" if err.ctx else "calosim --help"
            click.echo(f"calosim: error: {_one_line(err)} (see {command})", err=True)
            sys.exit(err.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt as err:
            _exit_interrupted(err.signum if isinstance(err, interrupts.Interrupted)
                              else signal.SIGINT)
        except BrokenPipeError:
            # the reader of stdout left (`calosim info FILE | head -1`): nothing to say, and
            # Python's flush at exit must not fail again
            _silence_stdout()
            sys.exit(128 + signal.SIGPIPE)
        except Exception as err:  # noqa: BLE001 - the last line of defence for users
            if ctx.params.get("debug"):
                raise
            if (signum := interrupts.received()) is not None:  # the error followed one
                _exit_interrupted(signum)
            click.echo(f"calosim: error: {_one_line(err)}", err=True)
            sys.exit(1)
        if (signum := interrupts.received()) is not None:  # one whose exception was lost
            _exit_interrupted(signum)
        return result


def _exit_interrupted(signum: int) -> NoReturn:
    click.echo(f"calosim: interrupted by {signal.Signals(signum).name}", err=True)
    sys.exit(128 + signum)


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, click.ClickException):
        return err.format_message().replace("\n", " ")
    if isinstance(err, CalosimError):
        return text
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or text}"
    return f"{type(err).__name__}: {text} (rerun with --debug for the traceback)"


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="calosim")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Fast simulation of the ALICE Zero Degree Calorimeters with learned models."""


def main() -> None:
    interrupts.install()
    try:
        cli(prog_name="calosim")
    finally:
        try:  # what is still buffered goes out at exit: a reader gone is no error either
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()


def _silence_stdout() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


from calosim.cli import (  # noqa: E402
    bench,
    export,
    generate,
    images,
    info,
    simulate,
    split,
    train,
    validate,
)

for _module in (simulate, split, validate, info, train, generate, bench, export, images):
    cli.add_command(_module.command)
cli.add_command(images.bench_command)
