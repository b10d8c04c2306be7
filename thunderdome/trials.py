"""Several trials of one race, summarised per lane (pure, no I/O).

Invariant: the summary is computed only from the trials' results dicts (the
``--json`` contract), so it can be recomputed from saved JSON or recordings.
One trial is an anecdote; the median and spread over trials is what a person
should compare.
"""

from __future__ import annotations

import statistics
from typing import Any

SUMMARY_FIELDS = ("ttft_s", "ttfa_s", "e2e_s", "output_tps", "completion_s", "itl_p99_ms")


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
    lane produced it, wins, and how each trial ended."""
    lanes: dict[str, dict[str, Any]] = {}
    for result in results:
        for lane in result.get("lanes", []):
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
    return {"trials": len(results), "lanes": summary}
