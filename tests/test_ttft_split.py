"""Where a TTFT went, by what the server says, and warm prompts marked.

Through the real CLI against the emulator, which reports what real servers
report: Ollama's ``load_duration`` and ``prompt_eval_duration``, llama.cpp's
``timings`` (``prompt_ms``, ``cache_n``), OpenAI's and the Responses API's
``cached_tokens``, Anthropic's ``cache_read_input_tokens``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.backends import server_timings as st
from thunderdome.recording.replay import load_recording

ROOT = Path(__file__).resolve().parents[1]
CACHED = 10


def test_only_numbers_the_server_sent_become_fields():
    assert st.from_llama_timings({"prompt_ms": 250.0, "cache_n": 30, "prompt_n": 70}) == {
        "prefill_s": 0.25, "cached_tokens": 30, "prompt_tokens": 100}
    hostile = {"prompt_ms": -1, "cache_n": True, "prompt_n": "70", "load_duration": math.nan,
               "prompt_eval_duration": float("inf"), "prompt_eval_count": -3}
    assert set(st.from_llama_timings(hostile).values()) == {None}
    assert set(st.from_ollama_done(hostile).values()) == {None}
    assert st.from_llama_timings("junk") == {} and st.from_anthropic_usage(None) == {}
    assert st.from_ollama_done({"load_duration": 2_000_000_000, "prompt_eval_duration": 5e8, "prompt_eval_count": 9}) == {
        "load_s": 2.0, "prefill_s": 0.5, "prompt_tokens": 9}
    assert st.from_anthropic_usage({"input_tokens": 5, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 5}) == {
        "cached_tokens": 90, "prompt_tokens": 100}
    assert st.from_openai_usage({"prompt_tokens": 50, "prompt_tokens_details": {"cached_tokens": 40}}) == {
        "cached_tokens": 40, "prompt_tokens": 50}
    assert st.from_responses_usage({"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0}}) == {
        "cached_tokens": 0, "prompt_tokens": 50}
    assert st.merged({"prefill_s": 0.2, "cached_tokens": None}, {"cached_tokens": 3, "prefill_s": 9.0}) == {
        "prefill_s": 0.2, "cached_tokens": 3}


@pytest.fixture(scope="module")
def race(tmp_path_factory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("split")
    warm = {"cached_tokens": CACHED}
    entries = [
        {"name": "ollama", "kind": "sim", "profile": "cloud", "protocol": "ollama"},
        {"name": "llama-cold", "kind": "sim", "profile": "cloud", "options": {"timings": True}},
        {"name": "llama-warm", "kind": "sim", "profile": "cloud", "options": {"timings": True, **warm}},
        {"name": "anthropic-warm", "kind": "sim", "profile": "cloud", "protocol": "anthropic", "options": warm},
        {"name": "responses-warm", "kind": "sim", "profile": "cloud", "protocol": "responses", "options": warm},
        {"name": "plain", "kind": "sim", "profile": "cloud"},
    ]
    (folder / "backends.yaml").write_text("backends:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries))
    done = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", "backends.yaml", "--task", "long-essay",
         "--headless", "--json", "out.json", "--record", "race.jsonl", "--max-tokens", "20", "--time-scale", "0.2"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=folder,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "out.json").read_text()), folder / "race.jsonl"


def lane(race, name: str) -> dict:
    return next(x for x in race[0]["lanes"] if x["name"] == name)


def test_ollama_ttft_splits_into_load_prefill_and_the_rest(race):
    ollama = lane(race, "ollama")
    split = ollama["ttft_split"]
    assert set(split) == {"load_s", "prefill_s", "rest_s"}
    assert split["prefill_s"] > 0.5 * ollama["ttft_s"]  # the emulator's wait for its first token is its "prefill"
    assert sum(split.values()) == pytest.approx(ollama["ttft_s"], abs=3e-4)  # each part rounded to 0.1 ms


def test_llama_cpp_timings_give_prefill_and_cache(race):
    cold, warm = lane(race, "llama-cold"), lane(race, "llama-warm")
    assert set(cold["ttft_split"]) == {"prefill_s", "rest_s"} and cold["prompt_cached"] is False
    assert warm["prompt_cached"] is True and warm["cached_tokens"] == CACHED


@pytest.mark.parametrize("name", ["anthropic-warm", "responses-warm"])
def test_a_cached_prompt_is_marked_on_every_protocol(race, name):
    warm = lane(race, name)
    assert warm["prompt_cached"] is True and warm["cached_tokens"] == CACHED


def test_a_lane_whose_server_says_nothing_has_no_split(race):
    plain = lane(race, "plain")
    assert plain["ttft_split"] is None and plain["prompt_cached"] is False and plain["cached_tokens"] is None


def test_the_recording_replays_the_split(race):
    from thunderdome.core.metrics import compute_results

    replayed = compute_results(load_recording(race[1]).events)
    assert [x["ttft_split"] for x in replayed["lanes"]] == [x["ttft_split"] for x in race[0]["lanes"]]


def test_a_warm_start_is_said_in_the_results_note(race):
    from thunderdome.core.metrics import Standings
    from thunderdome.tui.widgets.recording_note import lane_note

    standings = Standings().apply_all(load_recording(race[1]).events)
    notes = {s.name: lane_note(standings, s) for s in standings.ranked(standings.finished_t)}
    assert f"prompt from cache ({CACHED} of" in notes["llama-warm"] and "cache" not in notes["llama-cold"]
