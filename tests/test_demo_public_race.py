"""`thunderdome demo` reproduces the public long race, in real time.

This is the issue's acceptance check and takes about 95 s (the 4090 lane's
wall time): each sim lane's output speed and wall time within 5% of the
public figures, cloud first, Spark second, 4090 last. It goes through the
real CLI in a subprocess, the emulator in its own process, real HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TARGETS = {
    # lane: (output tok/s, e2e s) — DESIGN.md's public race
    "cloud": (208.0, 5.11),
    "dgx-spark": (42.9, 21.83),
    "rtx4090-offload": (8.7, 93.89),
}


@pytest.mark.slow
def test_demo_long_race_matches_the_public_numbers(tmp_path):
    out = tmp_path / "out.json"
    record = tmp_path / "long.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "demo", "--headless", "--task", "long-essay",
         "--json", str(out), "--record", str(record)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    data = json.loads(out.read_text())
    lanes = {lane["name"]: lane for lane in data["lanes"]}
    for name, (tps, e2e) in TARGETS.items():
        lane = lanes[name]
        assert lane["output_tps"] == pytest.approx(tps, rel=0.05), (name, lane)
        assert lane["e2e_s"] == pytest.approx(e2e, rel=0.05), (name, lane)
        assert lane["tokens_source"] in ("usage", "server")
    assert [lane["name"] for lane in data["lanes"]] == ["cloud", "dgx-spark", "rtx4090-offload"]
    assert data["winner"] == "cloud"
    # the recording replays to the very same figures
    replayed = subprocess.run(
        [sys.executable, "-m", "thunderdome", "replay", str(record), "--headless", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stderr
    again = json.loads(replayed.stdout)
    assert again["lanes"] == data["lanes"]
    assert again["winner"] == data["winner"]
