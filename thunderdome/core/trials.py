"""Several trials of one race, summarised per lane (pure, no I/O).

Invariant: the summary is computed only from the trials' results dicts (the
``--json`` contract), so it can be recomputed from saved JSON or recordings.
One trial is an anecdote; the median and spread over trials is what a person
should compare, and ``winner_clarity`` says whether the spreads let one call
the winner. The headless run and the TUI both show this summary.
"""

from __future__ import annotations

import statistics
from typing import Any

from thunderdome.core.figures import done_of, seconds

SUMMARY_FIELDS = ("ttft_s", "ttfa_s", "e2e_s", "output_tps", "completion_s", "itl_p99_ms", "done_s")
"""``done_s``: when the lane crossed the line (``figures.done_of``), the figure a race's winner is decided by."""

DONE_LABEL = {"long": "finish", "thunderdome": "completion"}
"""What ``done_s`` is called in a race of each kind."""


def _spread(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


def summarise_trials(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per lane: median / min / max of each metric over the trials where the
    lane produced it, wins, how each trial ended, and ``winner_clarity``."""
    kind = next((r.get("race", {}).get("kind") for r in results if r.get("race")), None) or "long"
    lanes: dict[str, dict[str, Any]] = {}
    for result in results:
        for lane in result.get("lanes", []):
            lane = dict(lane, done_s=done_of(lane, kind))
            entry = lanes.setdefault(
                lane["name"], {"name": lane["name"], "model": lane.get("model", ""), "statuses": [], "wins": 0, "_values": {}}
            )
            entry["statuses"].append(lane.get("status"))
            if result.get("winner") == lane["name"]:
                entry["wins"] += 1
            for key in SUMMARY_FIELDS:
                value = lane.get(key)
                if isinstance(value, (int, float)):
                    entry["_values"].setdefault(key, []).append(float(value))
    summary = []
    for entry in lanes.values():
        values = entry.pop("_values")
        for key in SUMMARY_FIELDS:
            entry[key] = _spread(values.get(key, []))
        summary.append(entry)
    summary.sort(key=lambda e: (-e["wins"], (e["ttft_s"] or {}).get("median", float("inf"))))
    return {"trials": len(results), "lanes": summary, "clarity": winner_clarity(summary, len(results), kind)}


def winner_clarity(lanes: list[dict[str, Any]], trials: int, kind: str) -> dict[str, Any]:
    """Whether the winner over the trials is clear: the lane with the most wins
    (ties: the better median of the deciding figure) is clearly ahead when its
    worst trial beats the runner-up's best, and it has the figure in every
    trial. ``lanes``: ``summarise_trials``' lanes. Returns ``clear``,
    ``leader``, ``runner_up``, ``figure`` (the deciding field) and ``text``,
    the sentence to show."""
    field, label = "done_s", DONE_LABEL.get(kind, DONE_LABEL["long"])

    def key(entry: dict[str, Any]) -> tuple[int, float]:
        return -entry["wins"], (entry[field] or {}).get("median", float("inf"))

    ordered = sorted(lanes, key=key)
    verdict: dict[str, Any] = {"clear": False, "leader": None, "runner_up": None, "figure": field}
    if not ordered or not ordered[0]["wins"]:
        return verdict | {"text": "not clear: no lane won a trial"}
    leader = ordered[0]
    verdict["leader"] = leader["name"]
    if len(ordered) == 1:
        return verdict | {"clear": True, "text": f"clear: {leader['name']} raced alone"}
    second = ordered[1]
    verdict["runner_up"] = second["name"]
    mine, theirs = leader[field], second[field]
    missing = trials - (mine["n"] if mine else 0)
    if missing:
        return verdict | {"text": f"not clear: {leader['name']} has no {label} time in {missing} of {trials} trials"}
    assert mine is not None
    worst = f"{leader['name']}'s worst trial ({seconds(mine['max'])})"
    if theirs is None:
        return verdict | {"clear": True, "text": f"clear: {worst} beats {second['name']}, which has no {label} time in any trial"}
    best = f"{second['name']}'s best ({seconds(theirs['min'])})"
    if mine["max"] < theirs["min"]:
        return verdict | {"clear": True, "text": f"clear: {worst} beats {best}, by {label} time"}
    return verdict | {"text": f"not clear: the {label} times overlap ({worst} is not ahead of {best})"}
