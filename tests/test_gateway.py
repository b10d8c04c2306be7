"""The metering gateway over real loopback HTTP: relays unchanged, meters with the race's parsers.

Each test puts a real gateway (``thunderdome.gateway``) between a client
playing the agent and a real upstream: the built-in emulator on all four
wire protocols, or a recording server that answers a fixed stream in pieces
and keeps what it was sent (to see the key, the model and the body).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
from hypothesis import given, settings, strategies as st
import pytest

from _emulator import emulator  # noqa: F401  # type: ignore[import-not-found]  # the fixture

from thunderdome.backends import make_backend
from thunderdome.core.events import Event, FirstByte, Notice, RequestRelayed, RequestSent, StreamEnded, ToolCallDone, Usage
from thunderdome.gateway import AGENT_KEYS, Gateway, Upstream, chat_route
from thunderdome.core.specs import BackendSpec

THROWAWAY = "sk-agent-throwaway"
REAL = "sk-real-upstream-key-123"
REPLY = "```bash\necho hi > a.txt\n```"
SSE_PIECES = [
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\ndata: {"choices":[{"index":0,"delta":{},',
    b'"finish_reason":"stop"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]


@dataclass
class Recorder:
    """A fixed upstream: records requests, answers ``SSE_PIECES`` one write each."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=lambda: list(SSE_PIECES))
    connections: list[int] = field(default_factory=list)
    """The client port of each connection, as it was accepted."""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            rec.connections.append(self.client_address[1])
            super().setup()

        def do_GET(self) -> None:
            rec.seen.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
            body = b'{"object":"list","data":[{"id":"m"}]}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("x-upstream", "yes")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            rec.seen.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": json.loads(body),
                             "raw": body.decode(), "port": self.client_address[1]})
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for piece in rec.pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"0\r\n\r\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0


async def _through(gateway: Gateway, method: str, path: str, body: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[httpx2.Response, bytes, list[bytes]]:
    """One request as an agent sends it; the response, its body, and its pieces as they came."""
    url = await gateway.listen_tcp()
    pieces: list[bytes] = []
    async with httpx2.AsyncClient(timeout=10) as client:
        request = client.build_request(method, url + path, json=body, headers=headers or {"authorization": f"Bearer {THROWAWAY}"})
        response = await client.send(request, stream=True)
        async for piece in response.aiter_raw():
            pieces.append(piece)
        await response.aclose()
    return response, b"".join(pieces), pieces


async def test_a_streamed_chat_is_relayed_unchanged_with_the_real_key_and_the_lanes_model(recorder, monkeypatch):
    monkeypatch.setenv("TD_TEST_REAL_KEY", REAL)
    spec = BackendSpec(name="hosted", kind="openai", url=recorder.url, model="lane-model", api_key_env="TD_TEST_REAL_KEY")
    backend = make_backend(spec)
    events: list[Event] = []
    gateway = Gateway("hosted", Upstream.of(backend), events.append, Clock())
    try:
        body = {"model": "agent-picked", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        response, data, _ = await _through(gateway, "POST", "/v1/chat/completions", body,
                                           {"authorization": f"Bearer {THROWAWAY}", "x-api-key": THROWAWAY})
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert data == b"".join(SSE_PIECES)  # every byte, as upstream sent it
    seen = recorder.seen[-1]
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == f"Bearer {REAL}"
    assert THROWAWAY not in json.dumps(seen)
    assert seen["body"]["model"] == "lane-model" and seen["body"]["messages"] == body["messages"]
    assert "thunderdome_sim" not in seen["body"]  # a real backend gets no emulator directive
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["RequestSent", "FirstByte"] and kinds[-1] == "StreamEnded"
    assert "".join(e.text for e in events if e.type == "token_delta") == "Hello"
    usage = next(e for e in events if isinstance(e, Usage))
    assert (usage.output_tokens, usage.input_tokens) == (2, 7)
    assert all(e.turn == 1 and e.lane == "hosted" for e in events)  # type: ignore[attr-defined]
    assert [e.t for e in events] == sorted(e.t for e in events)
    assert gateway.turns == 1 and gateway.relayed[0].status == 200


async def test_the_first_request_goes_on_a_connection_opened_before_it(recorder):
    backend = make_backend(BackendSpec(name="hosted", kind="openai", url=recorder.url, model="m"))
    gateway = Gateway("hosted", Upstream.of(backend), [].append, Clock())
    try:
        url = await gateway.listen_tcp()
        for _ in range(500):  # bounded wait for the spare connection
            if recorder.connections:
                break
            await asyncio.sleep(0.01)
        spare = list(recorder.connections)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with httpx2.AsyncClient(timeout=10) as client:
            for _ in range(2):
                assert (await client.post(url + "/v1/chat/completions", json=body)).status_code == 200
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert len(spare) == 1 and recorder.seen[0]["port"] == spare[0]  # opened while no request waited for it
    assert len(recorder.connections) == 2  # then one spare kept ahead, the first reused


async def test_a_request_naming_the_lanes_model_goes_upstream_as_the_agents_own_bytes(recorder, monkeypatch):
    monkeypatch.setenv("TD_TEST_REAL_KEY", REAL)
    spec = BackendSpec(name="hosted", kind="openai", url=recorder.url, model="lane-model", api_key_env="TD_TEST_REAL_KEY")
    backend = make_backend(spec)
    gateway = Gateway("hosted", Upstream.of(backend), [].append, Clock())
    raw = rb'{ "stream" : true,"messages":[{"role":"user","content":"caf\u00e9"}], "model":"lane-model" }'
    try:
        url = await gateway.listen_tcp()
        async with httpx2.AsyncClient(timeout=10) as client:
            response = await client.post(url + "/v1/chat/completions", content=raw,
                                         headers={"authorization": f"Bearer {THROWAWAY}", "x-thunderdome-sim": "{}"})
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 200 and gateway.turns == 1
    seen = recorder.seen[-1]
    assert seen["raw"] == raw.decode()  # not re-encoded: no copy, and no time of the agent's spent on it
    assert seen["headers"]["authorization"] == f"Bearer {REAL}"
    assert "x-thunderdome-sim" not in {k.lower() for k in seen["headers"]}  # a real backend gets no directive


async def test_model_listings_are_relayed_and_are_no_turn(recorder):
    backend = make_backend(BackendSpec(name="hosted", kind="openai", url=recorder.url, model="m"))
    events: list[Event] = []
    gateway = Gateway("hosted", Upstream.of(backend), events.append, Clock())
    try:
        response, data, _ = await _through(gateway, "GET", "/v1/models")
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 200 and json.loads(data)["data"][0]["id"] == "m"
    assert response.headers["x-upstream"] == "yes" and response.headers["content-length"] == str(len(data))
    assert recorder.seen[-1]["path"] == "/v1/models"
    assert "authorization" not in {k.lower() for k in recorder.seen[-1]["headers"]}  # no key given, none sent
    assert gateway.turns == 0 and gateway.relayed[0].turn is None
    assert [(type(e), e.method, e.path, e.status, e.chat) for e in events] == [  # type: ignore[attr-defined]
        (RequestRelayed, "GET", "/v1/models", 200, False)]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_a_chat_request_that_asks_for_no_stream_is_an_extra_request_never_a_turn(emulator, protocol):
    spec = BackendSpec(name="sim", kind="sim", profile="instant", model="instant", protocol=protocol)
    backend = make_backend(spec, sim_url=emulator.url)
    events: list[Event] = []
    turns: list[int] = []
    gateway = Gateway("sim", Upstream.of(backend), events.append, Clock(), on_turn=turns.append)
    path, body = TOOL_BODIES[protocol]
    try:
        response, data, _ = await _through(gateway, "POST", path, {"model": "title-model", "stream": False, **body})
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 200 and json.loads(data)  # the whole reply, as one JSON body
    assert gateway.turns == 0 and turns == [] and not any(isinstance(e, (RequestSent, FirstByte)) for e in events)
    extra = [e for e in events if isinstance(e, RequestRelayed)]
    assert len(extra) == 1 and extra[0].chat and extra[0].status == 200 and extra[0].path == path.split("?")[0]
    assert extra[0].seconds is not None and extra[0].seconds > 0  # the whole reply's time, never a TTFT
    assert emulator.fetch_log()[-1]["stream"] is False and emulator.fetch_log()[-1]["model"] == "instant"


async def test_a_reply_that_cannot_be_parsed_still_reaches_the_agent_whole(recorder):
    recorder.pieces = [SSE_PIECES[1], b"data: {not json\n\n", SSE_PIECES[4]]
    backend = make_backend(BackendSpec(name="hosted", kind="openai", url=recorder.url, model="m"))
    events: list[Event] = []
    gateway = Gateway("hosted", Upstream.of(backend), events.append, Clock())
    try:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        _, data, _ = await _through(gateway, "POST", "/v1/chat/completions", body)
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert data == b"".join(recorder.pieces)
    notes = [e for e in events if isinstance(e, Notice)]
    assert len(notes) == 1 and "malformed JSON frame" in notes[0].message and notes[0].lane == "hosted"
    assert not any(isinstance(e, StreamEnded) for e in events)


async def test_an_unreachable_backend_is_a_502_and_a_notice_never_a_raise():
    backend = make_backend(BackendSpec(name="gone", kind="openai", url="http://127.0.0.1:9/v1", model="m"))
    events: list[Event] = []
    gateway = Gateway("gone", Upstream.of(backend), events.append, Clock())
    try:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        response, data, _ = await _through(gateway, "POST", "/v1/chat/completions", body)
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 502 and "127.0.0.1:9" in json.loads(data)["error"]["message"]
    assert [type(e) for e in events] == [RequestSent, Notice] and events[1].level == "error"  # type: ignore[attr-defined]


TOOL_BODIES = {
    "openai": ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "bash", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}}}}], "messages": [{"role": "user", "content": "go"}],
        "stream_options": {"include_usage": True}}),  # usage only when the agent asks for it
    "responses": ("/v1/responses", {"tools": [{"type": "function", "name": "exec_command", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string"}}}}], "input": "go"}),
    "anthropic": ("/v1/messages?beta=true", {"max_tokens": 64, "tools": [{"name": "Bash", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}}}], "messages": [{"role": "user", "content": "go"}]}),
    "ollama": ("/api/chat", {"tools": [{"type": "function", "function": {"name": "bash", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}}}}], "messages": [{"role": "user", "content": "go"}]}),
}


@pytest.mark.parametrize("protocol", list(TOOL_BODIES))
async def test_each_protocol_through_the_emulator_is_one_metered_turn_with_the_tool_call(emulator, protocol):
    spec = BackendSpec(name="sim", kind="sim", profile="instant", model="instant", protocol=protocol)
    backend = make_backend(spec, sim_url=emulator.url)
    events: list[Event] = []
    turns: list[int] = []
    gateway = Gateway("sim", Upstream.of(backend), events.append, Clock(),
                      directive_for=lambda n: {"reply": REPLY, "seed": n}, on_turn=turns.append)
    path, body = TOOL_BODIES[protocol]
    try:
        response, data, _ = await _through(gateway, "POST", path, {"model": "claude-whatever", "stream": True, **body})
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 200 and data
    assert turns == [1] and isinstance(events[0], RequestSent) and isinstance(events[1], FirstByte)
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert len(done) == 1 and "echo hi > a.txt" in json.loads(done[0].arguments).values()
    assert isinstance(events[-1], StreamEnded) and events[-1].finish_reason in ("tool_calls", "tool_use", "stop")  # Ollama: stop
    assert any(isinstance(e, Usage) for e in events)
    record = emulator.fetch_log()[-1]
    assert record["model"] == "instant" and record["tool"] == done[0].name  # the lane's model, the directive's call


def test_only_posts_to_the_chat_paths_are_turns():
    assert chat_route("POST", "/v1/messages").protocol == "anthropic"  # type: ignore[union-attr]
    assert chat_route("POST", "/v1/responses").protocol == "responses"  # type: ignore[union-attr]
    assert chat_route("POST", "/api/chat").protocol == "ollama"  # type: ignore[union-attr]
    assert chat_route("GET", "/v1/chat/completions") is None
    assert chat_route("POST", "/v1/messages/count_tokens") is None
    assert {"authorization", "x-api-key"} <= AGENT_KEYS


def test_an_agents_v1_paths_land_on_the_backends_base():
    up = Upstream("http://h:1/v1")
    assert up.url("/v1/chat/completions", "") == "http://h:1/v1/chat/completions"
    assert up.url("/v1/messages", "beta=true") == "http://h:1/v1/messages?beta=true"
    assert up.url("/api/chat", "") == "http://h:1/api/chat"
    assert Upstream("http://h:1").url("/v1/messages", "") == "http://h:1/v1/messages"


def test_an_upstream_target_is_the_agents_path_on_the_backends_base():
    assert Upstream("http://h:1/v1").target("/v1/chat/completions", "") == "/v1/chat/completions"
    assert Upstream("http://h:1/v1/").target("/v1/messages", "beta=true") == "/v1/messages?beta=true"
    assert Upstream("http://h:1/v1").target("/api/chat", "") == "/api/chat"
    assert Upstream("http://h:1").target("/v1/models", "") == "/v1/models"
    assert Upstream("http://h:1/openai/v1").target("/v1/responses", "a=1") == "/openai/v1/responses?a=1"


_KEYS = ['"model"', '"mod\\u0065l"', '"\\u006Dodel"', '"stream"', '"options"', '"thunderdome_sim"',
         '"thunderdome\\u005fsim"', '"messages"', '"x\\"model\\""']
_VALUES = ['"lane-model"', '"other"', "true", '{"thunderdome_sim": {"tokens": 1}}', '{"model": "other"}',
           '["model", "\\"model\\""]', '"\\\\u0065"', "{}", "null"]
_WS = st.sampled_from(["", " ", "\n\t", "\r\n  "])


@settings(max_examples=600, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(_KEYS), st.sampled_from(_VALUES), _WS), max_size=5),
       first=st.booleans(), ws=_WS)
def test_a_body_goes_on_unread_only_if_its_one_model_is_the_lanes_and_it_holds_no_directive(pairs, first, ws):
    """Whatever the keys, escapes, nesting and spacing: a body the gateway
    sends on without reading it reads (when it is JSON at all) as an object
    whose ``model`` is the lane's, with no emulator directive anywhere."""
    from thunderdome.sim.directives import FIELD

    gateway = Gateway("lane", Upstream("http://h:1/v1", {}, "lane-model"), [].append, Clock())
    if first:
        pairs = [('"model"', '"lane-model"', ws), *pairs]
    raw = (ws + "{" + ",".join(f"{w}{k}{w}:{w}{v}" for k, v, w in pairs) + "}" + ws).encode()
    if not gateway._goes_as_is(raw):
        return
    try:
        body = json.loads(raw)
    except ValueError:
        return  # upstream refuses it
    assert body["model"] == "lane-model"
    assert FIELD not in json.dumps(body)  # not at the top, not in options, nowhere


def test_the_usual_agent_bodies_go_on_unread():
    gateway = Gateway("lane", Upstream("http://h:1/v1", {}, "lane-model"), [].append, Clock())
    assert gateway._goes_as_is(json.dumps({"model": "lane-model", "stream": True, "messages": [
        {"role": "user", "content": "caf\u00e9 \u001b[31m"}]}).encode())
    assert gateway._goes_as_is(b'{"model":"lane-model","input":[]}')
    assert not gateway._goes_as_is(b'{"stream":true,"model":"lane-model"}')  # read first: model is not the first key
    assert not gateway._goes_as_is(b'{"model":"lane-model-2"}')
    assert not gateway._goes_as_is(b'{"model":"lane-model","metadata":{"model":"x"}}')


async def test_a_directive_an_agent_hides_in_its_options_never_reaches_a_sim_backend(recorder):
    gateway = Gateway("sim", Upstream(recorder.url, {}, "m", {"seed": 7}), [].append, Clock())
    body = {"model": "m", "stream": True, "options": {"thunderdome_sim": {"tokens": 1}, "temperature": 0},
            "messages": [{"role": "user", "content": "hi"}]}
    try:
        response, _, _ = await _through(gateway, "POST", "/api/chat", body)
    finally:
        await gateway.aclose()
    assert response.status_code == 200
    seen = recorder.seen[-1]
    assert seen["body"]["options"] == {"temperature": 0} and seen["body"]["model"] == "m"
    assert json.loads(seen["headers"]["x-thunderdome-sim"]) == {"seed": 7}  # the lane's own directive only
