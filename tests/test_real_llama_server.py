"""Races against the real llama.cpp ``llama-server`` (marker ``real_server``).

Invariant: every figure a lane reports against this server agrees with what
the server itself measured (its ``print_timing`` log lines and the ``timings``
it sends) within 10 %, and every lane's token count names its true source.
The binary and the SmolLM2-135M GGUF come from ``.ci/llama_server.sh``'s cache;
without them the tier fails under CI (``CI=true``) and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from _emulator import take_chunk  # type: ignore[import-not-found]
from thunderdome.backends.anthropic import AnthropicParser
from thunderdome.backends.messages import anthropic_tools, function_tools, responses_tools
from thunderdome.backends.openai import OpenAIParser
from thunderdome.backends.responses import ResponsesParser
from thunderdome.backends.sse import SSEDecoder
from thunderdome.core.events import StreamEnded, ToolCallDelta, ToolCallDone, ToolCallStarted
from thunderdome.race.tools_mode import BASH_TOOL

pytestmark = pytest.mark.real_server

CACHE = Path(os.environ.get("THUNDERDOME_CACHE", "/var/cache/thunderdome"))
BINARY = CACHE / "llama-server-0.3.36" / "llama-server"
MODEL_DIR = CACHE / "smollm2-0.1.2"
TEMPLATE = BINARY.parent / "Qwen-Qwen2.5-7B-Instruct.jinja"
"""Qwen2.5's chatml template with ``<tool_call>`` JSON calls (llama.cpp ships and tests it)."""
MAX_TOKENS = 64
TIMING = re.compile(r"id +(\d+) \| task (\d+) \| +(prompt eval|eval) time = +([\d.]+) ms / +(\d+) tokens")


@dataclass
class Server:
    url: str
    log: Path

    def timings_since(self, offset: int) -> list[dict[str, float]]:
        """The server's own per-request figures logged after byte ``offset``."""
        by_task: dict[str, dict[str, float]] = {}
        for match in TIMING.finditer(self.log.read_bytes()[offset:].decode(errors="replace")):
            _, task, what, ms, n = match.groups()
            entry = by_task.setdefault(task, {})
            entry["prompt_s" if what == "prompt eval" else "eval_s"] = float(ms) / 1000
            if what == "eval":
                entry["tps"] = int(n) / (float(ms) / 1000)
        return [entry for entry in by_task.values() if "tps" in entry]

    def log_size(self) -> int:
        return self.log.stat().st_size


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path_factory: pytest.TempPathFactory, *args: str, needs: tuple[Path, ...] = (),
           cache_prompt: bool = False) -> Iterator[Server]:
    """A llama-server on a free port with the cached GGUF and ``args``, healthy;
    without ``cache_prompt`` every request pays its whole prompt."""
    models = sorted(MODEL_DIR.glob("*.gguf"))
    if not BINARY.is_file() or not models or not all(p.is_file() for p in needs):
        reason = f"no llama-server, GGUF or chat template under {CACHE}: run .ci/llama_server.sh first"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        # -t 1: two spinning threads on two shared cores collapse to 0.3 tok/s.
        # --no-cache-prompt: every race pays its prompt, so TTFT is comparable.
        cache = [] if cache_prompt else ["--no-cache-prompt"]
        proc = subprocess.Popen(
            [str(BINARY), "-m", str(models[0]), "--jinja", "-t", "1", *args,
             *cache, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # /v1/models answers while /health still says 503 "Loading model"
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama-server not healthy after 60 s"
            time.sleep(0.2)
        yield Server(url, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "--parallel", "4", "-c", "4096")


@pytest.fixture(scope="session")
def llama_tool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server with a chat template that describes tools: SmolLM2's own
    does not, and llama-server then ignores ``tools`` and ``tool_choice``."""
    yield from _serve(tmp_path_factory, "--parallel", "1", "-c", "2048", "--chat-template-file", str(TEMPLATE), needs=(TEMPLATE,))


def _race(server: Server, tmp_path: Path, kinds: list[str], task: str = "long-essay") -> list[dict]:
    lines = ["backends:"]
    for i, kind in enumerate(kinds):
        url = f"{server.url}/v1" if kind in ("openai", "responses") else server.url
        lines += [f"  - name: {kind}-{i}", f"    kind: {kind}", f"    url: {url}", "    model: smollm2"]
    backends = tmp_path / "backends.yaml"
    backends.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", task,
         "--headless", "--json", str(out), "--max-tokens", str(MAX_TOKENS), "--no-record"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())["lanes"]


def _near(value: float | None, truth: float) -> bool:
    return value is not None and abs(value - truth) <= 0.10 * truth


def _solo(server: Server, tmp_path: Path, kind: str) -> tuple[dict, dict[str, float]]:
    offset = server.log_size()
    (lane,) = _race(server, tmp_path, [kind])
    (truth,) = server.timings_since(offset)
    assert lane["status"] in ("winner", "finished"), lane
    assert lane["tokens"] == MAX_TOKENS and lane["tokens_source"] == "usage"
    assert _near(lane["output_tps"], truth["tps"]), (lane, truth)
    assert _near(lane["ttft_s"], truth["prompt_s"]), (lane, truth)
    return lane, truth


def test_openai_lane_agrees_with_the_servers_timings(llama_server: Server, tmp_path: Path) -> None:
    lane, truth = _solo(llama_server, tmp_path, "openai")
    assert _near(lane["server_tps"], truth["tps"])  # the usage chunk's `timings`
    assert lane["finish_reason"] == "length"
    # TTFT decomposed by the same `timings`: prompt_ms is the prefill the server logged;
    # --no-cache-prompt, so cache_n is 0: a cold start, not marked warm
    assert _near(lane["ttft_split"]["prefill_s"], truth["prompt_s"]), lane["ttft_split"]
    assert lane["cached_tokens"] == 0 and lane["prompt_cached"] is False


def test_anthropic_lane_agrees_with_the_servers_timings(llama_server: Server, tmp_path: Path) -> None:
    lane, _ = _solo(llama_server, tmp_path, "anthropic")
    assert lane["server_tps"] is None  # /v1/messages sends no timings
    assert lane["finish_reason"] == "max_tokens"


def test_responses_lane_agrees_with_the_servers_timings(llama_server: Server, tmp_path: Path) -> None:
    lane, truth = _solo(llama_server, tmp_path, "responses")
    assert _near(lane["server_tps"], truth["tps"])  # the `timings` beside response.completed


def test_first_chunk_is_role_only_and_usage_carries_timings(llama_server: Server) -> None:
    body = {"model": "x", "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.stream("POST", f"{llama_server.url}/v1/chat/completions", json=body, timeout=60) as resp:
        datas = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    chunks = [json.loads(d) for d in datas if d != "[DONE]"]
    assert datas[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4
    assert last["timings"]["predicted_n"] == 4


@pytest.mark.parametrize("lanes", [2, 4])
def test_concurrent_lanes_each_match_a_server_measurement(
    llama_server: Server, tmp_path: Path, lanes: int
) -> None:
    offset = llama_server.log_size()
    kinds = ["openai", "anthropic"] * (lanes // 2)
    results = _race(llama_server, tmp_path, kinds)
    truths = llama_server.timings_since(offset)
    assert len(truths) == lanes
    for lane in results:
        assert lane["status"] in ("winner", "finished"), lane
        assert lane["tokens"] == MAX_TOKENS and lane["tokens_source"] == "usage"
        assert any(_near(lane["output_tps"], t["tps"]) for t in truths), (lane, truths)


def test_thunderdome_task_ends_with_verdicts(llama_server: Server, tmp_path: Path) -> None:
    results = _race(llama_server, tmp_path, ["openai", "anthropic"], task="hello-file")
    assert all(lane["verdict"] and lane["status"] for lane in results), results
    assert all(lane["error"] is None or "Traceback" not in lane["error"] for lane in results)


# --- tool-call framing: what the real server streams when it must call a tool ---------------

ASK = "Create a file named greeting.txt."
PREFILL = "<tool_call>\n"
"""The assistant turn, continued from the template's call marker: ``tool_choice:
required`` is a grammar that still allows any text before the call, and
SmolLM2 left to itself writes prose until ``max_tokens``."""
TOOL_TOKENS = 96
CACHED = {"cache_prompt": True}
"""Over the server's --no-cache-prompt: these tests time nothing, and a shared
prompt prefix then costs its prefill once (~8 s of the tier's time on a busy machine)."""


def _stream(server: Server, path: str, body: dict, headers: dict | None = None) -> bytes:
    with httpx.stream("POST", f"{server.url}{path}", json=body, headers=headers, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()[:500]
        return resp.read()


def _frames(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]


def _parsed(parser_class: type, raw: bytes) -> list:
    """The same bytes through Thunderdome's own parser for the protocol."""
    return take_chunk(parser_class("lane", 1), SSEDecoder(), raw, 0.0)


def _commands(events: list) -> list[str]:
    """Each completed call's command; the events say a call starts once, with its name, before its pieces."""
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert [s.name for s in started] == ["bash"] * len(started) and len(done) == len(started) >= 1
    for call in started:
        pieces = [i for i, e in enumerate(events) if isinstance(e, ToolCallDelta) and e.index == call.index]
        assert pieces and events.index(call) < pieces[0]
    return [json.loads(d.arguments)["command"] for d in done]


def test_chat_completions_streams_tool_call_fragments(llama_tool_server: Server) -> None:
    body = {**CACHED, "model": "smollm2", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": TOOL_TOKENS,
            "temperature": 0, "tools": function_tools([BASH_TOOL]), "tool_choice": "required",
            "messages": [{"role": "user", "content": ASK}, {"role": "assistant", "content": PREFILL}]}
    raw = _stream(llama_tool_server, "/v1/chat/completions", body)
    chunks = _frames(raw)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    firsts: dict[int, dict] = {}
    args: dict[int, str] = {}
    for chunk in chunks:
        for piece in (chunk["choices"][0]["delta"].get("tool_calls") or []) if chunk["choices"] else []:
            if piece["index"] not in firsts:  # a call's first piece: id, type, name, and its first arguments
                firsts[piece["index"]] = piece
                assert piece["id"] and piece["type"] == "function" and piece["function"]["name"] == "bash"
            else:  # then arguments only
                assert piece.keys() == {"index", "function"} and piece["function"].keys() == {"arguments"}
            args[piece["index"]] = args.get(piece["index"], "") + piece["function"]["arguments"]
    assert sorted(firsts) == list(range(len(firsts))) and all(json.loads(a)["command"] for a in args.values())
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] < TOOL_TOKENS  # stopped by itself
    events = _parsed(OpenAIParser, raw)
    assert _commands(events) == [json.loads(args[i])["command"] for i in sorted(args)]
    assert [e.finish_reason for e in events if isinstance(e, StreamEnded)] == ["tool_calls"]


def test_responses_streams_function_call_items(llama_tool_server: Server) -> None:
    body = {**CACHED, "model": "smollm2", "stream": True, "max_output_tokens": TOOL_TOKENS, "temperature": 0,
            "tools": responses_tools([BASH_TOOL]), "tool_choice": "required",
            "input": [{"role": "user", "content": ASK},
                      {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": PREFILL}]}]}
    raw = _stream(llama_tool_server, "/v1/responses", body)
    frames = _frames(raw)
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" not in kinds
    assert all("sequence_number" not in f for f in frames)
    added = [f["item"] for f in frames if f["type"] == "response.output_item.added"]
    done = [f["item"] for f in frames if f["type"] == "response.output_item.done"]
    assert [i["type"] for i in added] == ["function_call"] * len(added) and {i["name"] for i in added} == {"bash"}
    assert [i["id"] for i in done] == [i["id"] for i in added] and all(i["status"] == "completed" for i in done)
    assert kinds.index("response.output_item.done") > max(i for i, k in enumerate(kinds) if k == "response.output_item.added")
    end = frames[-1]
    assert end["response"]["usage"]["output_tokens"] < TOOL_TOKENS and end["timings"]["predicted_n"] > 0
    events = _parsed(ResponsesParser, raw)
    assert _commands(events) == [json.loads(i["arguments"])["command"] for i in done]
    assert [e.finish_reason for e in events if isinstance(e, StreamEnded)] == ["tool_calls"]


def test_messages_streams_tool_use_blocks(llama_tool_server: Server) -> None:
    body = {**CACHED, "model": "smollm2", "stream": True, "max_tokens": TOOL_TOKENS, "temperature": 0,
            "tools": anthropic_tools([BASH_TOOL]), "tool_choice": {"type": "any"},
            "messages": [{"role": "user", "content": ASK}, {"role": "assistant", "content": PREFILL}]}
    raw = _stream(llama_tool_server, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    frames = _frames(raw)
    starts = [f["content_block"] for f in frames if f["type"] == "content_block_start"]
    assert starts and all(b["type"] == "tool_use" and b["name"] == "bash" and "input" not in b for b in starts)
    pieces = [f["delta"]["partial_json"] for f in frames if f["type"] == "content_block_delta"]
    assert len(pieces) > len(starts) and "ping" not in [f["type"] for f in frames]
    (stop,) = [f for f in frames if f["type"] == "message_delta"]
    assert stop["delta"]["stop_reason"] == "tool_use" and stop["usage"]["output_tokens"] < TOOL_TOKENS
    events = _parsed(AnthropicParser, raw)
    assert len(_commands(events)) == len(starts)
    assert [e.finish_reason for e in events if isinstance(e, StreamEnded)] == ["tool_use"]


# --- a one-slot server: a lane that only waited is told it was queued ---------------------------


@pytest.fixture(scope="session")
def llama_one_slot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "--parallel", "1", "-c", "2048", "--metrics")


def test_a_lane_queued_behind_another_is_told_so(llama_one_slot_server: Server, tmp_path: Path) -> None:
    import threading

    from thunderdome.backends.queue_probe import Busy, from_metrics, from_slots

    url = llama_one_slot_server.url
    streaming, stop = threading.Event(), threading.Event()

    def hog() -> None:  # holds the only slot, decoding, until told to stop
        body = {"model": "smollm2", "stream": True, "max_tokens": 1500, "temperature": 1.0,
                "messages": [{"role": "user", "content": "Write a very long story."}]}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as resp:
            for line in resp.iter_lines():
                if '"content":"' in line:
                    streaming.set()
                if stop.is_set():
                    break

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        assert streaming.wait(60), "the hog never streamed"
        slots = httpx.get(f"{url}/slots", timeout=10).json()
        assert from_slots(slots) == Busy(1, "llama.cpp /slots")  # the real shape, read as queued-behind
        assert "llamacpp:requests_deferred 0" in httpx.get(f"{url}/metrics", timeout=10).text
        (tmp_path / "backends.yaml").write_text(
            f"backends:\n  - name: waiting\n    kind: openai\n    url: {url}/v1\n    model: smollm2\n"
            "    timeouts: {first_token: 2}\n")
        done = subprocess.run(
            [sys.executable, "-m", "thunderdome", "race", "--backends", "backends.yaml", "--task", "long-essay",
             "--headless", "--json", "out.json", "--max-tokens", "8", "--no-record"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        during = httpx.get(f"{url}/metrics", timeout=10).text
    finally:
        stop.set()
        thread.join(30)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (lane,) = json.loads((tmp_path / "out.json").read_text())["lanes"]
    assert lane["status"] == "error"
    assert lane["error"] == "queued for 2 s: the server was busy with 1 other request (llama.cpp /slots)", lane
    # the real gauges read right; the lane that gave up still counts as deferred until the slot
    # frees (seen on 0.3.36): one more reason /slots, which knows whose slot is whose, has the last word
    assert from_metrics(during, "smollm2") == Busy(1, "llama.cpp /metrics")


@pytest.fixture(scope="session")
def llama_cache_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One slot that keeps its prompt cache (llama-server's default): the
    second identical request reuses the first one's prompt."""
    yield from _serve(tmp_path_factory, "--parallel", "1", "-c", "2048", cache_prompt=True)


def test_a_prompt_served_from_the_cache_is_marked_warm(llama_cache_server: Server, tmp_path: Path) -> None:
    offset = llama_cache_server.log_size()
    (cold,) = _race(llama_cache_server, tmp_path, ["openai"])
    (warm,) = _race(llama_cache_server, tmp_path, ["openai"])
    truths = llama_cache_server.timings_since(offset)
    assert len(truths) == 2
    assert cold["prompt_cached"] is False and not cold["cached_tokens"], cold
    # the same prompt again: cache_n says how much of it the slot reused
    assert warm["prompt_cached"] is True and warm["cached_tokens"] > 0, warm
    # each split's prefill is what the server logged for that request, and the warm one paid less
    assert _near(cold["ttft_split"]["prefill_s"], truths[0]["prompt_s"]), (cold["ttft_split"], truths)
    assert _near(warm["ttft_split"]["prefill_s"], truths[1]["prompt_s"]), (warm["ttft_split"], truths)
    assert warm["ttft_split"]["prefill_s"] < cold["ttft_split"]["prefill_s"]
    print(f"cold: TTFT {cold['ttft_s']:.3f} s, split {cold['ttft_split']}; "
          f"warm: TTFT {warm['ttft_s']:.3f} s, split {warm['ttft_split']}, {warm['cached_tokens']} cached tokens")
