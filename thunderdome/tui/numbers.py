"""Fixed-width number formats, so figures never jitter as they change.

Invariant: each formatter returns the same width for every value in its
range, with the unit included, and an em dash placeholder of that width when
the value is unknown. The text inside is ``thunderdome.core.figures``' (one
format per figure everywhere); this module only pads it.
"""

from __future__ import annotations

from thunderdome.core import figures


def seconds(value: float | None, width: int = 7) -> str:
    """``  0.90 s`` / `` 21.8 s`` / ``  94 s`` (``figures.seconds``)."""
    return figures.seconds(value).rjust(width)


def tps(value: float | None, width: int = 11) -> str:
    """``190.2 tok/s`` (``figures.rate``)."""
    return figures.rate(value).rjust(width)


def clock(value: float) -> str:
    """The big race clock: ``0.00`` under 10 s, ``12.3`` under 1000 s, then ``1234``."""
    if value < 10:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def tokens(count: int | float, cap: int | None = None) -> str:
    if cap:
        width = len(str(cap))
        return f"{int(count):>{width}}/{cap}"
    return f"{int(count)}"
