"""Several trials: the per-lane summary, and --trials through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from thunderdome.trials import summarise_trials


def lane(name, ttft, tps, status="finished"):
    return {"name": name, "model": name, "status": status, "ttft_s": ttft, "output_tps": tps,
            "e2e_s": None, "completion_s": None}


def test_summary_medians_wins_and_missing_values():
    results = [
        {"winner": "a", "lanes": [lane("a", 0.1, 100.0, "winner"), lane("b", 0.5, 50.0)]},
        {"winner": "a", "lanes": [lane("a", 0.3, 120.0, "winner"), lane("b", None, None, "error")]},
        {"winner": "b", "lanes": [lane("a", 0.2, 110.0), lane("b", 0.4, 60.0, "winner")]},
    ]
    summary = summarise_trials(results)
    assert summary["trials"] == 3
    a, b = summary["lanes"]
    assert (a["name"], a["wins"], b["wins"]) == ("a", 2, 1)
    assert a["ttft_s"] == {"median": 0.2, "min": 0.1, "max": 0.3, "n": 3}
    assert b["ttft_s"] == {"median": 0.45, "min": 0.4, "max": 0.5, "n": 2}  # the error trial has no TTFT
    assert b["statuses"] == ["finished", "error", "winner"]
    assert a["e2e_s"] is None


def test_trials_through_the_cli(tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text("backends:\n  - {name: q, kind: sim, profile: instant}\n  - {name: s, kind: sim, profile: fast-local}\n")
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", "long-essay",
         "--headless", "--trials", "3", "--max-tokens", "10", "--time-scale", "0.1", "--json", str(out),
         "--record", str(tmp_path / "rec.jsonl")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert len(data["races"]) == 3
    assert data["summary"]["trials"] == 3
    assert {entry["name"] for entry in data["summary"]["lanes"]} == {"q", "s"}
    assert len(list(tmp_path.glob("rec-long-essay-*.jsonl"))) == 3  # one recording per trial
    assert "3 trials" in result.stdout and "3 trials" not in result.stderr  # results on stdout
