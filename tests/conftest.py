"""Shared test set-up: recordings never land in the user's home folder; secrets
learnt by one test are not known in the next."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _recordings_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("THUNDERDOME_RECORDINGS", str(tmp_path_factory.mktemp("recordings")))


@pytest.fixture(autouse=True)
def _no_remembered_secrets(monkeypatch):
    """Keys and URL credentials ``thunderdome.redact`` learnt in one test are
    forgotten before the next (a process normally runs one set of races)."""
    from thunderdome import redact

    monkeypatch.setattr(redact, "_names", set())
    monkeypatch.setattr(redact, "_values", set())
