"""Exit statuses and one-line failures shared by every `sbdn` command."""

from __future__ import annotations

from typing import NoReturn

import click

EXIT_ENVIRONMENT = 1  # the machine or its files stand in the way (permissions, disk, lock)
EXIT_USAGE = 2  # the command line is wrong
EXIT_TOO_MANY_ERRORS = 3  # the run finished, but most images failed: INPUT is probably wrong
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class UsageFailure(click.ClickException):
    """A one-line usage error (exit 2) found by our own checks."""

    exit_code = EXIT_USAGE


def fail(message: str) -> NoReturn:
    """One-line environment error (exit 1), before any work starts."""
    raise click.ClickException(message)


def usage(message: str) -> NoReturn:
    """One-line usage error (exit 2)."""
    raise UsageFailure(message)
