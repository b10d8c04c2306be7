"""Thunderdome's exceptions, and the one map from them to exit codes.

Invariant: every exception Thunderdome raises on purpose derives from
``ThunderdomeError``, carries a one-line message a person can act on, and
maps to exactly one exit code through ``exit_code`` (the CLI's only map).
Errors that happen *inside* a race are not raised through it: they become
events (``LaneFailed``) and the race goes on.

The tree (each class lives next to the code that raises it and derives from
a class here; this module imports nothing from the package)::

    ThunderdomeError                   exit 1 unless a subclass says otherwise
    ├── UsageError                     exit 2: bad usage or bad config
    │   ├── ConfigError                yamlfile: a bad backends or task file
    │   ├── RecordingError             replay: a recording that cannot be used
    │   └── OptionError                sim.options: a bad sim option; also a ValueError
    ├── RaceSetupError                 race.runner: the race could not run at all
    ├── IsolationUnavailable           sandbox.isolation: no (such) sandbox here; also a RuntimeError
    ├── ArenaError                     sandbox.arena: the SIGKILL arena failed; also a RuntimeError
    ├── BackendError                   backends.base: a lane-ending failure, becomes LaneFailed
    ├── FrameError                     backends.sse: a byte stream that cannot be framed
    ├── FileRefused                    readfile: a file too large, special or unreadable (callers re-raise as config/recording errors)
    ├── EventFormatError               events: a dict that is not an event; also a ValueError
    ├── HttpError                      sim.http: the emulator got a bad request (answers its status)
    ├── ClientGone                     sim.http: the emulator's client hung up
    ├── UpstreamError                  gateway.upstream: an agent's backend unreachable (the agent gets a 502)
    └── FramingError                   gateway.framing: a body's framing is not HTTP/1.1 (a 502, or a 400 to an agent)

Exit codes: ``EXIT_OK`` 0, ``EXIT_FAILED`` 1, ``EXIT_USAGE`` 2 and
``EXIT_INTERRUPTED`` 130; nothing else in the package spells a number.
"""

from __future__ import annotations

EXIT_OK = 0
"""The command ran (a race ran, whoever won)."""
EXIT_FAILED = 1
"""A race could not run, or ran but its recording is incomplete."""
EXIT_USAGE = 2
"""Bad usage or bad config (a task, backends file or recording)."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (or SIGTERM / SIGHUP in a headless race): 128 + SIGINT."""


class ThunderdomeError(Exception):
    """Base of every exception Thunderdome raises on purpose."""

    exit_code: int = EXIT_FAILED


class UsageError(ThunderdomeError):
    """Bad usage or bad config: exit code 2 with this one-line message."""

    exit_code = EXIT_USAGE


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that reached the command line."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return exc.exit_code if isinstance(exc, ThunderdomeError) else EXIT_FAILED


__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "ThunderdomeError", "UsageError", "exit_code"]
