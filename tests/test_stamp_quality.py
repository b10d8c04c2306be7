"""Deltas read together share one stamp: ITL figures then describe the
client, not the server, and say so.

The emulator's ``burst`` quirk writes four token frames per write, as a
server would look to a client too busy to read each one; raced through the
real CLI beside a healthy lane, the burst lane's ITL p50 is 0 and it is
marked, the healthy one is not, and one marked lane of two does not make
the race client-limited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.core.events import LaneFinished, RaceStarted, RequestSent, TokenDelta
from thunderdome.output.export import export_results
from thunderdome.core.metrics import Standings, client_limited
from thunderdome.sim.faults import BURST

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("stamps")
    entries = [{"name": "healthy", "kind": "sim", "profile": "cloud"},
               {"name": "burst", "kind": "sim", "profile": "cloud", "options": {"fault": "burst"}}]
    (folder / "backends.yaml").write_text("backends:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries))
    done = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", "backends.yaml", "--task", "long-essay",
         "--headless", "--json", "out.json", "--max-tokens", "41", "--time-scale", "0.5"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=folder,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "out.json").read_text())


def lane(results: dict, name: str) -> dict:
    return next(x for x in results["lanes"] if x["name"] == name)


def test_a_lane_read_in_bursts_is_marked_as_limited_by_the_client(results):
    burst = lane(results, "burst")
    assert burst["itl_limited"] is True and burst["itl_p50_ms"] == 0.0
    # 41 deltas in 11 writes of BURST: 3.7 a read when each write is read on its
    # own; a loaded machine may read two writes at once (4.1 seen), never fewer
    # deltas a read than a write holds, and never the whole reply in one read.
    assert BURST - 1 <= burst["deltas_per_read"] < 41 / 2


def test_a_lane_read_delta_by_delta_is_not(results):
    healthy = lane(results, "healthy")
    assert healthy["itl_limited"] is False and healthy["deltas_per_read"] < 1.5
    assert results["race"]["client_limited"] is False  # one marked lane of two is not the machine


def test_exports_carry_the_mark(results):
    assert "ITL limited by the client (3.7 deltas per read)" in export_results(results, "md")
    rows = export_results(results, "csv").splitlines()
    header = rows[0].split(",")
    assert {"deltas_per_read", "itl_limited"} <= set(header)


def shared_reads(name: str, per_read: int, t0: float = 0.0) -> list:
    """A lane whose 12 deltas came ``per_read`` to a read (equal stamps)."""
    events = [RequestSent(t=t0, lane=name)]
    events += [TokenDelta(t=t0 + 0.1 + 0.01 * (i // per_read), lane=name, text="w") for i in range(12)]
    return events + [LaneFinished(t=t0 + 1, lane=name)]


def test_the_race_is_client_limited_when_most_lanes_are():
    start = [RaceStarted(t=0.0, lanes=tuple({"name": n, "kind": "openai", "model": "m"} for n in "abc"))]
    two_of_three = Standings().apply_all(start + shared_reads("a", 3) + shared_reads("b", 2) + shared_reads("c", 1))
    ranked = two_of_three.ranked(2.0)
    assert {s.name: s.deltas_per_read for s in ranked} == {"a": 3.0, "b": 2.0, "c": 1.0}
    assert client_limited(ranked) and two_of_three.results()["race"]["client_limited"] is True
    one_of_three = Standings().apply_all(start + shared_reads("a", 3) + shared_reads("b", 1) + shared_reads("c", 1))
    assert not client_limited(one_of_three.ranked(2.0))


def test_the_results_screen_says_the_machine_set_the_itl_figures():
    from thunderdome.core.lane_stats import CLIENT_LIMITED_NOTE
    from thunderdome.tui.widgets.recording_note import RecordingNote

    start = [RaceStarted(t=0.0, lanes=tuple({"name": n, "kind": "openai", "model": "m"} for n in "ab"))]
    standings = Standings().apply_all(start + shared_reads("a", 3) + shared_reads("b", 4))
    shown = " ".join(RecordingNote(standings, None, {"a": "#ffffff", "b": "#ffffff"}).render().plain.split())
    assert CLIENT_LIMITED_NOTE in shown
    assert "a ITL limited by the client (3.0 deltas per read)" in shown
