"""Scale: hundreds of sandboxed lanes race, as root too (each sandbox then
runs under a throwaway uid of its own; the pool once held only 64)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.sandbox.limits import UID_BLOCK, allocate_uid, release_uid

LANES = 200


def test_the_uid_pool_holds_hundreds_of_sandboxes_at_once():
    uids = [allocate_uid() for _ in range(LANES + 56)]
    try:
        assert len(set(uids)) == len(uids)
        assert UID_BLOCK >= len(uids)
    finally:
        for uid in uids:
            release_uid(uid)


@pytest.mark.slow
def test_200_lanes_race_a_sandboxed_task(tmp_path):
    backends = tmp_path / "many.yaml"
    backends.write_text(
        "backends:\n" + "".join(f"  - {{name: lane{i:03d}, kind: sim, profile: instant}}\n" for i in range(LANES)),
        encoding="utf-8",
    )
    from thunderdome.race.tasks import load_task

    task = tmp_path / "hello-all.yaml"  # every lane races on after the win: 200 sandboxes run their commands
    task.write_text(Path(load_task("hello-file").source).read_text().replace("name: hello-file", "name: hello-all")
                    + "race_on: true\n", encoding="utf-8")
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", str(task),
         "--headless", "--json", str(out), "--no-record"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lanes = json.loads(out.read_text())["lanes"]
    assert len(lanes) == LANES
    failed = {lane["name"]: lane["error"] for lane in lanes if lane["status"] == "error"}
    assert failed == {}
    assert sorted(lane["status"] for lane in lanes).count("winner") == 1
    assert all(lane["verdict"] for lane in lanes)
