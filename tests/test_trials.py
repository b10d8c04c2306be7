"""Several trials: the per-lane summary, and --trials through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from thunderdome.core.trials import summarise_trials


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
    clarity = data["summary"]["clarity"]["text"]
    assert clarity.startswith(("clear: ", "not clear: "))
    assert clarity in " ".join(result.stdout.split())  # said under the trials table


def race(winner, kind="long", **lanes):
    """One trial's results: lane name -> (ttft, tps, e2e = finish, completion)."""
    return {"race": {"kind": kind}, "winner": winner, "lanes": [
        {"name": name, "model": name, "status": "winner" if name == winner else "finished", "ttft_s": v[0],
         "output_tps": v[1], "e2e_s": v[2], "finish_s": v[2], "completion_s": v[3]} for name, v in lanes.items()]}


def test_clear_when_the_leaders_worst_trial_beats_the_runner_ups_best():
    trials = [race("quick", quick=(0.1, 100, 1.0 + k / 10, None), steady=(0.5, 90, 1.5 + k / 10, None)) for k in range(3)]
    clarity = summarise_trials(trials)["clarity"]
    assert (clarity["clear"], clarity["leader"], clarity["runner_up"], clarity["figure"]) == (True, "quick", "steady", "done_s")
    assert clarity["text"] == "clear: quick's worst trial (1.20 s) beats steady's best (1.50 s), by finish time"


def test_not_clear_when_the_ranges_overlap_or_the_leader_missed_a_trial():
    overlap = [race("quick", quick=(0.1, 100, 1.0, None), steady=(0.5, 90, 1.5, None)),
               race("quick", quick=(0.1, 100, 1.6, None), steady=(0.5, 90, 1.7, None))]
    clarity = summarise_trials(overlap)["clarity"]
    assert not clarity["clear"] and clarity["leader"] == "quick"
    assert clarity["text"] == "not clear: the finish times overlap (quick's worst trial (1.60 s) is not ahead of steady's best (1.50 s))"
    missed = [race("quick", quick=(0.1, 100, 1.0, None), steady=(0.5, 90, 1.5, None)),
              race("quick", quick=(0.1, 100, None, None), steady=(0.5, 90, 1.7, None))]
    assert summarise_trials(missed)["clarity"]["text"] == "not clear: quick has no finish time in 1 of 2 trials"


def test_clarity_uses_the_completion_time_in_thunderdome_races_and_needs_a_winner():
    trials = [race("a", "thunderdome", a=(0.9, 50, 1.0, 1.04), b=(1.4, 40, None, None)) for _ in range(2)]
    clarity = summarise_trials(trials)["clarity"]
    assert clarity["clear"] and clarity["figure"] == "done_s"
    assert clarity["text"] == "clear: a's worst trial (1.04 s) beats b, which has no completion time in any trial"
    nobody = [race(None, a=(0.9, 50, 1.0, None), b=(1.4, 40, 2.0, None))]
    assert summarise_trials(nobody)["clarity"] == {"clear": False, "leader": None, "runner_up": None, "figure": "done_s",
                                                    "text": "not clear: no lane won a trial"}
