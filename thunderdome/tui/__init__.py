"""Thunderdome's Textual TUI: setup, race and results screens over the event stream.

Invariant: importing this package loads no textual; ``make_app`` and
``run_tui`` are looked up lazily, so UI-free helpers (``feed``,
``safe_text``, ``ranking``) stay importable by tests. Event sources live in
``thunderdome.sources``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_app", "run_tui"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from thunderdome.tui import app

        return getattr(app, name)
    raise AttributeError(f"module 'thunderdome.tui' has no attribute {name!r}")
