"""The race-level fault suite: every way a backend can fail, for each of the
three wire protocols, over real loopback HTTP, inside a real race.

For each failure the faulty lane ends as an error with a specific one-line
reason within its timeout, keeping the tokens it got; the other lanes finish
normally; the recording holds what happened and recomputes to the live
results; the process exits 0 without a traceback. Legal-but-awkward wire
habits (quirks) must still finish cleanly.

Two layers:

- ``test_cli_*``: one real ``python -m thunderdome race --headless`` per
  protocol, every fault and quirk as its own lane beside a healthy sim lane
  (one race per protocol keeps the wall time low; each assertion still
  names the lane it is about).
- ``test_race_*``: the same faults in-process through ``run_race``, one
  faulty lane + one healthy lane per race, for exact reasons and event order.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from thunderdome.core.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    FirstByte,
    LaneFailed,
    LaneFinished,
    RaceFinished,
    RaceStarted,
    RequestSent,
    TokenDelta,
    LANE_END_TYPES,
)
from thunderdome.core.metrics import compute_results
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.recording.replay import load_recording
from thunderdome.sim.replies import tokenize
from thunderdome.core.specs import BackendSpec, Timeouts

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("openai", "ollama", "anthropic")
MAX_TOKENS = 30
TIME_SCALE = 0.1
FAULT_AT = 5
STALL_TIMEOUT = 1.0
"""first_token / idle seconds of the stalling lanes."""
SLACK_S = 10.0
"""Generous bound: a lane that fails fast must not wait for a default timeout
(60 s first token, 30 s idle). Protects against hangs, not a benchmark."""

UNICODE_REPLY = "Ünïcödé — “quotes”, 漢字 and a flag 🏁 at the finish: naïve café"
"""Every token holds a multi-byte character the split_utf8 quirk cuts in two."""

END = {"openai": r"\[DONE\]", "ollama": "done:true", "anthropic": "message_stop"}
STREAM = {"openai": "an event stream", "ollama": "an NDJSON stream", "anthropic": "an event stream"}
OVERLOADED = {
    "openai": "server_error: The server is overloaded",
    "ollama": "The server is overloaded",
    "anthropic": "overloaded_error: The server is overloaded",
}


def reason_pattern(fault: str, protocol: str) -> str:
    """The exact reason (regex, full match) a lane with ``fault`` must end with."""
    return {
        "refused": r"connection refused at 127\.0\.0\.1:\d+",
        "http_401": r"HTTP 401 Unauthorized: .+",
        "http_404": r"HTTP 404 Not Found: .+",
        "http_429": r"HTTP 429 Too Many Requests, retry after 20 s: .+",
        "http_500": r"HTTP 500 Internal Server Error: .+",
        "http_503": r"HTTP 503 Service Unavailable: .+",
        "html_200": rf"expected {STREAM[protocol]}, got text/html",
        "drop_mid": rf"connection dropped after {FAULT_AT} tokens",
        "stall_before": r"no token within 1 s",
        "stall_after": rf"no bytes for 1 s after {FAULT_AT} tokens",
        "bad_json": r"malformed JSON frame: .+",
        "bad_utf8": r"invalid UTF-8 in stream",
        "huge_line": r"frame larger than 1 MiB",
        "error_frame": rf"server error mid-stream: {OVERLOADED[protocol]}.*",
        "no_end": rf"stream ended without {END[protocol]} after {FAULT_AT} tokens \(likely cut\)",
        "cut": r"stream cut: ended without a finish reason after 0 tokens",
    }[fault]


BEFORE_STREAM = ("refused", "http_401", "http_404", "http_429", "http_500", "http_503", "html_200", "stall_before")
"""Faults that strike before any token: the lane keeps 0 tokens."""
MID_STREAM = ("drop_mid", "stall_after", "bad_json", "bad_utf8", "huge_line", "error_frame", "no_end")
"""Faults that strike after ``FAULT_AT`` tokens: the lane keeps exactly those."""
EMPTY_STREAM = ("cut",)
"""Faults with a body but no token: role chunk, then the end marker with no finish reason (after
tokens, that is a clean end: tests/test_clean_end.py)."""
FAULTS = BEFORE_STREAM + MID_STREAM + EMPTY_STREAM
STALLS = ("stall_before", "stall_after")


def quirks_for(protocol: str) -> tuple[str, ...]:
    """Quirks that apply to ``protocol`` (``no_usage`` has no effect on the
    emulator's Anthropic stream; ``choices_null`` is an OpenAI shape)."""
    quirks = ["split_utf8", "trickle", "keepalive"]
    if protocol in ("openai", "ollama"):
        quirks.append("no_usage")
    if protocol == "openai":
        quirks.append("choices_null")
    return tuple(quirks)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_url(protocol: str, port: int) -> str:
    return f"http://127.0.0.1:{port}" + ("/v1" if protocol == "openai" else "")


# --- lane specs, as YAML (CLI) and as BackendSpec (in-process) ---------------------------------


def lane_entry(name: str, protocol: str, what: str, port: int) -> dict[str, Any]:
    """One backends-file entry: ``what`` is ``healthy``, a fault or a quirk."""
    if what == "refused":
        return {"name": name, "kind": protocol, "url": base_url(protocol, port), "model": "m"}
    entry: dict[str, Any] = {"name": name, "kind": "sim", "profile": "instant", "protocol": protocol}
    if what == "healthy":
        return entry
    options: dict[str, Any] = {"fault": what}
    if what in MID_STREAM:
        options["fault_at"] = FAULT_AT
    if what == "split_utf8":
        options["reply"] = UNICODE_REPLY
    entry["options"] = options
    if what in STALLS:
        entry["timeouts"] = {"first_token": STALL_TIMEOUT, "idle": STALL_TIMEOUT}
    return entry


def spec_of(entry: dict[str, Any]) -> BackendSpec:
    kw = dict(entry)
    kw.setdefault("agent", "text")  # the fault points (FAULT_AT, CUT_MID_COMMAND) are counted in code-block replies
    if "timeouts" in kw:
        kw["timeouts"] = Timeouts(**kw["timeouts"])
    return BackendSpec(**kw)


# --- reading a race back ------------------------------------------------------------------------


def lane_text(events: list[Event], lane: str) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenDelta) and e.lane == lane and e.channel == "answer")


def lane_end(events: list[Event], lane: str) -> Event:
    ends = [e for e in events if isinstance(e, LANE_END_TYPES) and e.lane == lane]
    assert len(ends) == 1, f"{lane}: {ends}"
    return ends[0]


def request_t(events: list[Event], lane: str) -> float:
    return next(e.t for e in events if isinstance(e, RequestSent) and e.lane == lane)


def check_faulty_lane(fault: str, protocol: str, lane: dict[str, Any], events: list[Event]) -> list[str]:
    """Every way the faulty lane ``lane`` (a results row) breaks the contract."""
    name = lane["name"]
    problems = []
    reason = lane["error"] or ""
    if lane["status"] != "error" or not re.fullmatch(reason_pattern(fault, protocol), reason):
        problems.append(f"{name}: status {lane['status']!r}, reason {reason!r} !~ {reason_pattern(fault, protocol)!r}")
    end = lane_end(events, name)
    if not isinstance(end, LaneFailed) or end.reason != reason:
        problems.append(f"{name}: recorded ending {end!r} differs from the results' reason")
    kept = FAULT_AT if fault in MID_STREAM else 0
    deltas = [e for e in events if isinstance(e, TokenDelta) and e.lane == name]
    if len(deltas) != kept or lane["tokens"] != kept:
        problems.append(f"{name}: kept {len(deltas)} deltas / {lane['tokens']} tokens, expected {kept}")
    if kept and not all(e.t <= end.t for e in deltas):
        problems.append(f"{name}: a token came after the lane's end")
    took = end.t - request_t(events, name)
    low, high = (0.9 * STALL_TIMEOUT, STALL_TIMEOUT + SLACK_S) if fault in STALLS else (0.0, SLACK_S)
    if not low <= took <= high:
        problems.append(f"{name}: ended {took:.2f} s after its request, expected within [{low}, {high}]")
    return problems


def check_ok_lane(what: str, protocol: str, lane: dict[str, Any], events: list[Event], healthy_text: str) -> list[str]:
    """Every way a healthy or quirky lane breaks the contract."""
    name = lane["name"]
    problems = []
    end = lane_end(events, name)
    if lane["status"] not in ("finished", "winner") or not isinstance(end, LaneFinished) or lane["error"]:
        problems.append(f"{name}: status {lane['status']!r}, error {lane['error']!r}, end {end!r}")
    text = lane_text(events, name)
    expected = UNICODE_REPLY if what == "split_utf8" else healthy_text
    if text != expected:
        problems.append(f"{name}: text {text[:60]!r}… differs from {expected[:60]!r}…")
    tokens = len(tokenize(UNICODE_REPLY)) if what == "split_utf8" else MAX_TOKENS
    if lane["tokens"] != tokens:
        problems.append(f"{name}: {lane['tokens']} tokens, expected {tokens}")
    source = "estimate" if what == "no_usage" else ("server" if protocol == "ollama" else "usage")
    if lane["tokens_source"] != source:
        problems.append(f"{name}: tokens_source {lane['tokens_source']!r}, expected {source!r}")
    if not lane["finish_reason"]:
        problems.append(f"{name}: no finish reason")
    return problems


# --- the CLI races: one per protocol, every fault and quirk as a lane ---------------------------


@dataclass
class CliRace:
    protocol: str
    lanes: dict[str, str]
    """lane name -> what it does (``healthy``, a fault or a quirk)."""
    returncode: int
    stderr: str
    results: dict[str, Any]
    record: Path
    seconds: float

    def row(self, name: str) -> dict[str, Any]:
        return next(lane for lane in self.results["lanes"] if lane["name"] == name)


def _yaml(entries: list[dict[str, Any]]) -> str:
    # JSON is YAML: no dependency on how a YAML writer quotes things.
    return "backends:\n" + "".join(f"  - {json.dumps(e, ensure_ascii=False)}\n" for e in entries)


@pytest.fixture(scope="module", params=PROTOCOLS)
def cli_race(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRace]:
    protocol = request.param
    folder = tmp_path_factory.mktemp(f"faults-{protocol}")
    port = closed_port()
    lanes = {"healthy": "healthy"}
    lanes.update({f"f-{fault}": fault for fault in FAULTS})
    lanes.update({f"q-{quirk}": quirk for quirk in quirks_for(protocol)})
    backends = folder / "backends.yaml"
    backends.write_text(_yaml([lane_entry(name, protocol, what, port) for name, what in lanes.items()]), encoding="utf-8")
    out, record = folder / "out.json", folder / "race.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", "long-essay",
         "--headless", "--json", str(out), "--record", str(record), "--max-tokens", str(MAX_TOKENS),
         "--time-scale", str(TIME_SCALE)],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(folder), stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - start
    results = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    yield CliRace(protocol, lanes, result.returncode, result.stderr, results, record, seconds)


def test_cli_race_with_faulty_lanes_exits_0_without_traceback(cli_race: CliRace) -> None:
    assert cli_race.returncode == 0, cli_race.stderr[-3000:]
    assert "Traceback" not in cli_race.stderr
    assert sorted(lane["name"] for lane in cli_race.results["lanes"]) == sorted(cli_race.lanes)
    # Nothing waited for a default timeout (the longest lanes stall for 1 s).
    assert cli_race.results["race"]["duration_s"] < SLACK_S


def test_cli_each_faulty_lane_ends_with_its_specific_reason(cli_race: CliRace) -> None:
    events = load_recording(cli_race.record).events
    problems = []
    for name, what in cli_race.lanes.items():
        if what in FAULTS:
            problems += check_faulty_lane(what, cli_race.protocol, cli_race.row(name), events)
    assert problems == []


def test_cli_healthy_and_quirky_lanes_finish_normally(cli_race: CliRace) -> None:
    events = load_recording(cli_race.record).events
    healthy_text = lane_text(events, "healthy")
    assert len(tokenize(healthy_text)) == MAX_TOKENS
    problems = []
    for name, what in cli_race.lanes.items():
        if what not in FAULTS:
            problems += check_ok_lane(what, cli_race.protocol, cli_race.row(name), events, healthy_text)
    assert problems == []
    ok = {name for name, what in cli_race.lanes.items() if what not in FAULTS}
    assert cli_race.results["winner"] in ok
    ranks = {lane["name"]: lane["rank"] for lane in cli_race.results["lanes"]}
    assert max(ranks[name] for name in ok) < min(ranks[name] for name in cli_race.lanes if name not in ok)


def test_cli_recording_replays_to_the_live_results(cli_race: CliRace) -> None:
    rec = load_recording(cli_race.record)
    assert rec.notices == []
    assert isinstance(rec.events[0], RaceStarted) and isinstance(rec.events[-1], RaceFinished)
    assert rec.header["task"] == "long-essay"
    live = {k: v for k, v in cli_race.results.items() if k != "recording"}
    assert compute_results(rec.events) == live
    assert cli_race.results["recording"] == str(cli_race.record)


# --- in-process: one faulty lane beside one healthy lane, per fault x protocol ---------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from thunderdome.sim.launch import start_emulator_thread

    with start_emulator_thread() as handle:
        yield handle


async def race_two(emulator: Any, protocol: str, what: str) -> tuple[dict[str, Any], list[Event], Any]:
    entries = [lane_entry("healthy", protocol, "healthy", 0), lane_entry("lane", protocol, what, closed_port())]
    events: list[Event] = []
    standings = await run_race(
        load_task("long-essay"),
        [spec_of(e) for e in entries],
        [events.append],
        sim_url=emulator.url,
        time_scale=TIME_SCALE,
        max_tokens=MAX_TOKENS,
    )
    return standings.results(), events, standings


def assert_well_formed(events: list[Event], lanes: list[str]) -> None:
    """RaceStarted first, RaceFinished last, one ending per lane, each lane's
    events in time order and none after its ending."""
    assert isinstance(events[0], RaceStarted) and isinstance(events[-1], RaceFinished)
    assert sum(isinstance(e, RaceFinished) for e in events) == 1
    for name in lanes:
        mine = [e for e in events if getattr(e, "lane", None) == name]
        ts = [e.t for e in mine]
        assert ts == sorted(ts), name
        assert isinstance(mine[-1], LANE_END_TYPES), (name, mine[-1])
        assert sum(isinstance(e, LANE_END_TYPES) for e in mine) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", FAULTS)
async def test_race_fault_ends_only_its_lane(emulator: Any, protocol: str, fault: str) -> None:
    results, events, _ = await race_two(emulator, protocol, fault)
    assert_well_formed(events, ["healthy", "lane"])
    rows = {lane["name"]: lane for lane in results["lanes"]}
    assert check_faulty_lane(fault, protocol, rows["lane"], events) == []
    healthy = rows["healthy"]
    assert healthy["status"] == "winner" and healthy["tokens"] == MAX_TOKENS and results["winner"] == "healthy"
    # a body byte arrived only where the stream got going before the fault
    assert any(isinstance(e, FirstByte) and e.lane == "lane" for e in events) == (fault not in BEFORE_STREAM)
    if fault in MID_STREAM:  # the tokens kept are the healthy stream's first ones
        assert lane_text(events, "healthy").startswith(lane_text(events, "lane"))
    assert compute_results(events) == results


@pytest.mark.parametrize(
    "protocol, quirk", [(p, q) for p in PROTOCOLS for q in quirks_for(p)], ids=lambda v: str(v)
)
async def test_race_quirk_still_finishes(emulator: Any, protocol: str, quirk: str) -> None:
    results, events, _ = await race_two(emulator, protocol, quirk)
    assert_well_formed(events, ["healthy", "lane"])
    rows = {lane["name"]: lane for lane in results["lanes"]}
    assert check_ok_lane("healthy", protocol, rows["healthy"], events, lane_text(events, "healthy")) == []
    assert check_ok_lane(quirk, protocol, rows["lane"], events, lane_text(events, "healthy")) == []
    assert compute_results(events) == results


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_race_turn_total_timeout(emulator: Any, protocol: str) -> None:
    """A stall shorter than ``idle`` but past the turn's ``total``."""
    entry = lane_entry("lane", protocol, "stall_after", 0)
    entry["timeouts"] = {"total": STALL_TIMEOUT}
    events: list[Event] = []
    standings = await run_race(load_task("long-essay"), [spec_of(entry)], [events.append],
                               sim_url=emulator.url, time_scale=TIME_SCALE, max_tokens=MAX_TOKENS)
    lane = standings.results()["lanes"][0]
    assert lane["status"] == "error" and lane["error"] == "turn exceeded 1 s" and lane["tokens"] == FAULT_AT
    took = lane_end(events, "lane").t - request_t(events, "lane")
    assert 0.9 * STALL_TIMEOUT <= took <= STALL_TIMEOUT + SLACK_S


async def test_race_timeout_ends_a_lane_still_streaming(emulator: Any) -> None:
    """The task's own timeout is the backstop for a lane whose backend
    timeouts are long: it ends as an error, keeping its tokens; the race
    still has its winner."""
    import dataclasses

    task = dataclasses.replace(load_task("long-essay"), timeout=1.5)
    entries = [lane_entry("healthy", "openai", "healthy", 0), lane_entry("stuck", "ollama", "stall_after", 0)]
    del entries[1]["timeouts"]  # the defaults: 60 s to the first token, 30 s idle
    events: list[Event] = []
    standings = await run_race(task, [spec_of(e) for e in entries], [events.append],
                               sim_url=emulator.url, time_scale=TIME_SCALE, max_tokens=MAX_TOKENS)
    results = standings.results()
    rows = {lane["name"]: lane for lane in results["lanes"]}
    assert rows["stuck"]["status"] == "error" and rows["stuck"]["tokens"] == FAULT_AT
    assert rows["stuck"]["error"] == "race timeout: still running after 1.5 s"
    assert results["winner"] == "healthy"
    finished = events[-1]
    assert isinstance(finished, RaceFinished) and finished.winner == "healthy"
    assert 1.4 <= finished.t <= 1.5 + SLACK_S
    assert_well_formed(events, ["healthy", "stuck"])


# --- in-process: faults in Thunderdome races (agent loop and arena) ---------------------------------

THUNDERDOME_FAULTS = ("refused", "http_429", "html_200", "drop_mid", "stall_after", "bad_json", "error_frame",
                      "no_end", "cut")
"""Each strikes before the reply's shell block closes (``FAULT_AT`` = 5 tokens:
the opening fence and its newline), so no command may run for that lane."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("task_name", ["hello-file", "sigkill"])
async def test_race_thunderdome_faults_end_their_lanes_as_errors(emulator: Any, protocol: str, task_name: str) -> None:
    port = closed_port()
    entries = [lane_entry("healthy", protocol, "healthy", 0)]
    entries += [lane_entry(f"f-{fault}", protocol, fault, port) for fault in THUNDERDOME_FAULTS]
    scale = TIME_SCALE
    if task_name == "sigkill":
        # The healthy lane kills every fighter the moment its command runs, which
        # eliminates lanes still streaming: let it start after every fault struck
        # (slow-start: first token at 3 s; the slowest fault, a 1 s stall, ends by ~1 s).
        entries[0]["profile"] = "slow-start"
        scale = 1.0
    task = load_task(task_name)
    if task.win_rule == "first_correct":  # the faulty lanes race on after the healthy lane's win, until each fault strikes
        task = replace(task, race_on=True)
    events: list[Event] = []
    standings = await run_race(task, [spec_of(e) for e in entries], [events.append],
                               sim_url=emulator.url, time_scale=scale)
    results = standings.results()
    rows = {lane["name"]: lane for lane in results["lanes"]}
    assert_well_formed(events, list(rows))
    problems = []
    for fault in THUNDERDOME_FAULTS:
        problems += check_faulty_lane(fault, protocol, rows[f"f-{fault}"], events)
    assert problems == []
    acted = {e.lane for e in events if isinstance(e, (CommandExtracted, ExecFinished))}
    assert acted == {"healthy"}
    assert results["winner"] == "healthy" and rows["healthy"]["status"] == "winner"
    assert compute_results(events) == results


CUT_MID_COMMAND = {
    "hello-file": 10,  # ```bash \n echo 'Hello, Thunderd|ome!' > greeting.txt \n ```
    "sigkill": 7,  # ```bash \n kill -9| 123 456 \n ```  (a "kill -9" of nothing, or of the wrong PIDs)
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("task_name", sorted(CUT_MID_COMMAND))
async def test_race_thunderdome_cut_mid_command_runs_nothing(emulator: Any, protocol: str, task_name: str) -> None:
    """A reply that ends (end marker, no finish reason) in the middle of its
    shell block: half a command must never run; every turn is told so and
    the lane ends with that verdict, not an error."""
    entry = lane_entry("cut", protocol, "cut", 0)
    entry["options"]["fault_at"] = CUT_MID_COMMAND[task_name]
    entries = [entry, lane_entry("other", protocol, "refused", closed_port())]  # the arena needs opponents
    events: list[Event] = []
    standings = await run_race(load_task(task_name), [spec_of(e) for e in entries], [events.append],
                               sim_url=emulator.url, time_scale=TIME_SCALE)
    rows = {lane["name"]: lane for lane in standings.results()["lanes"]}
    assert not [e for e in events if isinstance(e, (CommandExtracted, ExecFinished))]
    turns = load_task(task_name).max_turns
    assert rows["cut"]["turns"] == turns and rows["cut"]["tokens"] == turns * CUT_MID_COMMAND[task_name]
    assert rows["cut"]["status"] != "error" and rows["cut"]["error"] is None, rows["cut"]
    assert rows["cut"]["verdict"] == "reply cut mid-command (no finish reason): nothing ran", rows["cut"]
    assert_well_formed(events, ["cut", "other"])


# --- in-process, scripted servers: wire shapes the emulator does not make --------------------------


async def _race_raw(kind: str, script: Any, **spec_kw: Any) -> tuple[dict[str, Any], list[Event]]:
    from _emulator import RawServer  # type: ignore[import-not-found]

    events: list[Event] = []
    async with RawServer(lambda seen: script) as server:
        url = server.url + ("/v1" if kind == "openai" else "")
        spec = BackendSpec(name="lane", kind=kind, url=url, model="m", **spec_kw)
        standings = await run_race(load_task("long-essay"), [spec], [events.append], max_tokens=MAX_TOKENS)
    return standings.results(), events


ANTHROPIC_NO_USAGE = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","role":"assistant","content":[]}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    *[
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" tok"}}\n\n'
    ] * 4,
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


async def test_race_anthropic_stream_without_usage_counts_are_estimated() -> None:
    from _emulator import chunked  # type: ignore[import-not-found]

    results, events = await _race_raw("anthropic", chunked(ANTHROPIC_NO_USAGE))
    lane = results["lanes"][0]
    assert lane["status"] == "winner" and lane["finish_reason"] == "end_turn"
    assert lane["tokens"] == 4 and lane["tokens_source"] == "estimate"


@pytest.mark.parametrize("kind", PROTOCOLS)
async def test_race_server_that_never_answers_hits_the_first_token_timeout(kind: str) -> None:
    """The connection is accepted and the request read, but no response
    header ever comes (a wedged server)."""
    results, events = await _race_raw(kind, [30.0], timeouts=Timeouts(first_token=STALL_TIMEOUT))
    lane = results["lanes"][0]
    assert lane["status"] == "error" and lane["error"] == "no token within 1 s"
    end = lane_end(events, "lane")
    assert 0.9 * STALL_TIMEOUT <= end.t - request_t(events, "lane") <= STALL_TIMEOUT + SLACK_S


@pytest.mark.parametrize("kind", PROTOCOLS)
async def test_race_server_that_hangs_up_without_a_response(kind: str) -> None:
    from _emulator import CLOSE  # type: ignore[import-not-found]

    results, _ = await _race_raw(kind, [CLOSE])
    lane = results["lanes"][0]
    assert lane["status"] == "error"
    assert re.fullmatch(r"server at 127\.0\.0\.1:\d+ closed the connection without a response", lane["error"])


# --- backends files the config accepts but the network stack cannot use ----------------------------


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "thunderdome", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL)


def _odd_url_race(tmp_path: Path, url: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    backends = tmp_path / "b.yaml"
    backends.write_text(_yaml([lane_entry("healthy", "openai", "healthy", 0),
                               {"name": "odd", "kind": "openai", "url": url, "model": "m"}]), encoding="utf-8")
    out = tmp_path / "out.json"
    result = _cli(["race", "--backends", str(backends), "--task", "long-essay", "--headless", "--no-record",
                   "--json", str(out), "--max-tokens", "5", "--time-scale", str(TIME_SCALE)], tmp_path)
    return result, (json.loads(out.read_text()) if out.exists() else None)


def test_unparseable_url_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result, _ = _odd_url_race(tmp_path, "http://[::1")
    assert "Traceback" not in result.stderr
    assert result.returncode in (1, 2), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "odd" in result.stderr or "[::1" in result.stderr


def test_port_out_of_range_is_named(tmp_path: Path) -> None:
    result, data = _odd_url_race(tmp_path, "http://127.0.0.1:99999/v1")
    assert "Traceback" not in result.stderr
    if result.returncode == 2:  # rejected by the config: one line naming the url
        assert len(result.stderr.strip().splitlines()) == 1 and "99999" in result.stderr
        return
    assert result.returncode == 0 and data is not None
    odd = next(lane for lane in data["lanes"] if lane["name"] == "odd")
    assert odd["status"] == "error" and "internal error" not in odd["error"] and "port" in odd["error"]


async def test_refused_reason_names_the_url_port_even_port_0() -> None:
    results, _ = await race_lane_at("http://127.0.0.1:0/v1")
    reason = results["lanes"][0]["error"]
    assert "127.0.0.1:80" not in reason and ("127.0.0.1:0" in reason or "port 0" in reason), reason


async def race_lane_at(url: str) -> tuple[dict[str, Any], list[Event]]:
    events: list[Event] = []
    spec = BackendSpec(name="lane", kind="openai", url=url, model="m")
    standings = await run_race(load_task("long-essay"), [spec], [events.append], max_tokens=MAX_TOKENS)
    return standings.results(), events
