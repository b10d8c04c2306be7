"""Race-level events: what happens to the whole race, not to one lane.

Invariant: they belong to no lane (a ``Notice`` may name one, only to tell
the viewer something); ``WinnerDecided`` comes at most once, before
``RaceFinished``, and names the same winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thunderdome.core.events.base import Event


@dataclass(frozen=True, slots=True)
class RaceStarted(Event):
    """The start barrier opened. ``lanes``: one dict per lane with name, kind,
    model, url (never a key). ``started_at``: wall-clock ISO time (for humans);
    ``isolation``: the sandbox level in force (``bwrap``/``unshare``/``rlimits``
    or ``none`` for long races). ``max_tokens``: the cap sent to every lane;
    ``expected_tokens``: the task's expected reply length (0: not given);
    ``time_scale``: what sim lanes' delays were multiplied by (1.0: real
    time; a lanes entry's own ``time_scale`` overrides it for that lane).
    A lanes entry may carry the backend's ``price``."""

    type: ClassVar[str] = "race_started"
    task: str = ""
    kind: str = "long"
    title: str = ""
    lanes: tuple[dict[str, Any], ...] = ()
    started_at: str = ""
    isolation: str = "none"
    win_rule: str = ""
    max_tokens: int = 0
    expected_tokens: int = 0
    time_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class WinnerDecided(Event):
    """The race has its winner, ``winner``, called the moment it is certain (a
    Thunderdome lane's command passed first, or its fighter stands alone; a
    long race's first lane to finish, once no lane still running can have
    finished before it), while other lanes may still run. At most one per
    race, before ``RaceFinished``, whose ``winner`` names the same lane.
    Recordings made before this event existed (format 2 too) have none: there
    ``RaceFinished`` names the winner."""

    type: ClassVar[str] = "winner_decided"
    winner: str = ""


@dataclass(frozen=True, slots=True)
class RaceFinished(Event):
    """Every lane has ended. ``winner`` is the winning lane's name, or None."""

    type: ClassVar[str] = "race_finished"
    winner: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something worth telling the viewer (e.g. sandbox fell back). ``lane`` may
    be empty for race-wide notices."""

    type: ClassVar[str] = "notice"
    message: str = ""
    level: str = "info"
    lane: str = ""

