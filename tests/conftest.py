"""Shared test set-up: recordings never land in the user's home folder; secrets
learnt by one test are not known in the next; a module marked ``both_loops``
runs each async test twice, on asyncio's default loop and on the race loop
(``backends/poll_stamps.py``, which stamps arrivals at the poll)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    if item.get_closest_marker("both_loops") is None:
        return {"default_loop": asyncio.new_event_loop}
    from thunderdome.backends.poll_stamps import new_race_loop

    return {"default_loop": asyncio.new_event_loop, "race_loop": new_race_loop}


@pytest.fixture(autouse=True)
def _recordings_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("THUNDERDOME_RECORDINGS", str(tmp_path_factory.mktemp("recordings")))


@pytest.fixture(autouse=True)
def _no_remembered_secrets(monkeypatch):
    """Keys and URL credentials ``thunderdome.core.redact`` learnt in one test are
    forgotten before the next (a process normally runs one set of races)."""
    from thunderdome.core import redact

    monkeypatch.setattr(redact, "_names", set())
    monkeypatch.setattr(redact, "_values", set())
