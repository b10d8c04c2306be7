"""Thunderdome's exceptions, and the one map from them to exit codes.

Invariant: every exception Thunderdome raises on purpose derives from
``ThunderdomeError``, carries a one-line message a person can act on, and
maps to exactly one exit code through ``exit_code`` (the CLI's only map).
Errors that happen *inside* a race are not raised through it: they become
events (``LaneFailed``) and the race goes on.

    ThunderdomeError                   exit 1 unless a subclass says otherwise
    └── UsageError                     exit 2: bad usage or bad config

(The full tree is drawn here as the classes join it.)
"""

from __future__ import annotations

EXIT_OK = 0
"""The command ran (a race ran, whoever won)."""
EXIT_FAILED = 1
"""A race could not run, or ran but its recording is incomplete."""
EXIT_USAGE = 2
"""Bad usage or bad config (a task, backends file or recording)."""


class ThunderdomeError(Exception):
    """Base of every exception Thunderdome raises on purpose."""

    exit_code: int = EXIT_FAILED


class UsageError(ThunderdomeError):
    """Bad usage or bad config: exit code 2 with this one-line message."""

    exit_code = EXIT_USAGE


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that reached the command line."""
    return exc.exit_code if isinstance(exc, ThunderdomeError) else EXIT_FAILED


__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "ThunderdomeError", "UsageError", "exit_code"]
