"""``kedro run`` for this project: Kedro's own run command, with errors a user can act on.

Kedro finds this module (``<package>.cli``) and lets its commands replace the built-in ones.
``run`` takes every option of Kedro's ``kedro run`` unchanged and adds ``--verbose``. What
changes is how a run ends when it fails:

* an error raised on bad input (:class:`~avalanche_kedro.core.errors.AvalancheError`, also when
  Kedro wrapped it, e.g. in a ``DatasetError`` while loading a corpus) prints its two parts,
  what is wrong and how to fix it, and exits with status 1 - no Python traceback;
* an interruption (Ctrl-C / SIGINT, or SIGTERM from a scheduler) prints what was kept and the
  command that resumes the run, and exits with 130 (SIGINT) or 143 (SIGTERM);
* anything else is a bug, not bad input: its full traceback is shown.

``kedro run --verbose``, or a logging configuration (``KEDRO_LOGGING_CONFIG``) that puts the
``avalanche_kedro`` logger at DEBUG, shows the traceback of input errors too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from .core.errors import AvalancheError
from .settings import ignore_known_kedro_warnings

# Kedro may load this module before the settings; the filter must be in place either way.
ignore_known_kedro_warnings()

EXIT_BAD_INPUT = 1
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, as shells report it


def avalanche_error_in(exc: BaseException) -> AvalancheError | None:
    """The project's own error in ``exc``'s chain (``raise ... from``, or raised while handling).

    Kedro wraps an exception raised inside a dataset's ``load`` in a ``DatasetError``; the
    project's error with its fix is the cause.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AvalancheError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def traceback_requested(verbose: bool) -> bool:
    """``--verbose``, or the project's logger at DEBUG (a user's ``KEDRO_LOGGING_CONFIG``)."""
    return verbose or logging.getLogger("avalanche_kedro").isEnabledFor(logging.DEBUG)


def input_error_text(error: AvalancheError) -> str:
    """What the user reads: the error's class, the problem and the fix."""
    return f"Error ({type(error).__name__}): {error.problem}\n  How to fix: {error.fix}"


def interruption_text(exc: BaseException, argv: list[str]) -> tuple[str, int]:
    """The message for an interrupted run and its exit status."""
    name = getattr(exc, "signal_name", None) or "SIGINT"
    command = ["kedro", *argv]
    if "--only-missing-outputs" not in command:
        command.append("--only-missing-outputs")
    text = (
        f"Run interrupted ({name}). Every node that finished kept its saved outputs; the "
        "interrupted node saved nothing and its scratch files were removed; earlier versions "
        "are untouched.\n"
        f"  To resume: {' '.join(command)}"
    )
    return text, EXIT_SIGNAL.get(name, 130)


def _run(verbose: bool, **options: Any) -> Any:
    try:
        return kedro_run.callback(**options)
    except KeyboardInterrupt as exc:
        if traceback_requested(verbose):
            raise
        text, status = interruption_text(exc, sys.argv[1:])
        click.secho(text, fg="yellow", err=True)
        sys.exit(status)
    except Exception as exc:
        error = avalanche_error_in(exc)
        if error is None or traceback_requested(verbose):
            raise
        click.secho(input_error_text(error), fg="red", err=True)
        sys.exit(EXIT_BAD_INPUT)


run = click.Command(
    name="run",
    callback=_run,
    params=[
        *kedro_run.params,
        click.Option(
            ["--verbose"],
            is_flag=True,
            default=False,
            help="Show the Python traceback of an input error (they are shown as "
            "problem + fix without it).",
        ),
    ],
    help=kedro_run.help,
    short_help=kedro_run.short_help,
)


@click.group(name="avalanche_kedro")
def cli() -> None:
    """Commands of the avalanche_kedro project."""


cli.add_command(run)
