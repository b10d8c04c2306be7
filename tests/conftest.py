"""Shared test set-up: recordings never land in the user's home folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _recordings_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("THUNDERDOME_RECORDINGS", str(tmp_path_factory.mktemp("recordings")))
