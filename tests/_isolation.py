"""The sandbox's isolation variants as pytest parameters (a plain module, not a conftest).

A variant this machine cannot run is a skipped parameter that says why (and,
for bubblewrap, how to get it), never a silent pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from thunderdome.sandbox.isolation import VARIANTS, IsolationUnavailable, isolation_variant


def variant_param(name: str) -> Any:
    """``name`` as a parameter, skipped with the reason if it is unavailable here."""
    try:
        isolation_variant(name)
    except IsolationUnavailable as exc:
        hint = " - install bubblewrap (apt-get install bubblewrap); CI does" if name == "bwrap" else ""
        return pytest.param(name, marks=pytest.mark.skip(reason=f"{exc}{hint}"), id=name)
    return pytest.param(name, id=name)


VARIANT_PARAMS = [variant_param(name) for name in VARIANTS]
"""Every isolation variant, one parameter each."""
