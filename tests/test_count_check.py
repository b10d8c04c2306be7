"""A server's token count is believed only where its stream agrees.

The emulator's ``undercount`` quirk reports a third of the tokens it
streamed, as a broken server would; raced through the real CLI on each
protocol, the lane counts the deltas instead, says what the server claimed,
and its rate is the deltas' rate. The healthy lane beside it keeps the
server's count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.recording.replay import load_recording
from thunderdome.core.token_count import defended_count

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("openai", "anthropic", "ollama", "responses")
MAX_TOKENS = 60


def test_the_servers_count_stands_where_the_stream_agrees():
    assert defended_count(120, "usage", 100, 400) == (120, "usage", "")  # several tokens in some deltas
    assert defended_count(None, None, 100, 400) == (100, "estimate", "")


def test_a_count_below_the_deltas_is_not_believed():
    assert defended_count(32, "usage", 100, 400) == (100, "estimate", "server counted 32 tokens for 100 non-empty deltas")


def test_a_count_beyond_four_per_character_is_not_believed():
    assert defended_count(4 * 25 + 2, "server", 10, 25).source == "server"
    tokens, source, check = defended_count(5000, "usage", 10, 25)
    assert (tokens, source) == (10, "estimate") and check == "server counted 5000 tokens for 25 characters streamed"


@pytest.fixture(scope="module")
def race(tmp_path_factory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("count")
    entries = [{"name": "healthy", "kind": "sim", "profile": "instant", "protocol": "openai"}]
    entries += [{"name": f"under-{p}", "kind": "sim", "profile": "instant", "protocol": p,
                 "options": {"fault": "undercount"}} for p in PROTOCOLS]
    (folder / "backends.yaml").write_text("backends:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", "backends.yaml", "--task", "long-essay",
         "--headless", "--json", "out.json", "--record", "race.jsonl", "--max-tokens", str(MAX_TOKENS)],
        capture_output=True, text=True, timeout=120, env=env, cwd=folder, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "out.json").read_text()), folder / "race.jsonl"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_undercounting_server_is_flagged_and_the_rate_is_the_deltas(race, protocol):
    results, record = race
    lane = next(x for x in results["lanes"] if x["name"] == f"under-{protocol}")
    deltas = sum(1 for e in load_recording(record).events
                 if getattr(e, "lane", "") == lane["name"] and e.type in ("token_delta", "tool_call_delta"))
    assert deltas > 10 and lane["tokens"] == deltas
    assert lane["tokens_source"] == "estimate"
    assert lane["count_check"] == f"server counted {deltas // 3} tokens for {deltas} non-empty deltas"
    span = lane["e2e_s"] - lane["ttft_s"]  # each rounded to 0.1 ms in --json
    assert (deltas - 1) / (span + 1e-4) - 0.01 <= lane["output_tps"] <= (deltas - 1) / max(span - 1e-4, 1e-9) + 0.01


def test_the_healthy_lane_keeps_the_servers_count(race):
    lane = next(x for x in race[0]["lanes"] if x["name"] == "healthy")
    assert lane["tokens_source"] == "usage" and lane["count_check"] is None


def test_the_count_check_is_in_every_export(race):
    from thunderdome.output.export import export_results

    results, _ = race
    for fmt in ("csv", "md"):
        assert "server counted" in export_results(results, fmt), fmt


def test_the_results_screen_and_the_summary_say_what_the_server_claimed(race):
    from rich.console import Console

    from thunderdome.core.metrics import Standings
    from thunderdome.output.report import summary
    from thunderdome.tui.widgets.recording_note import lane_note

    standings = Standings().apply_all(load_recording(race[1]).events)
    lane = standings.ranked(standings.finished_t)
    notes = {s.name: lane_note(standings, s) for s in lane}
    assert "server counted" in notes["under-openai"] and "server counted" not in notes["healthy"]
    console = Console(width=400, record=True)
    console.print(summary(standings))
    assert "server counted" in console.export_text()
