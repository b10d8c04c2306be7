"""Every failure a lane can meet, over real loopback HTTP, becomes one
specific BackendError line, after the events the stream already produced."""

from __future__ import annotations

import re
import socket
import time

import httpx2
import pytest

from _emulator import (  # type: ignore[import-not-found]
    CLOSE,
    RawServer,
    chunked,
    collect,
    emulator,
    raw_spec,
    request,
    sim_backend,
)
from thunderdome.backends import make_backend
from thunderdome.backends.errors import body_message, retry_after, transport_error
from thunderdome.core.events import FirstByte, RequestSent, TokenDelta
from thunderdome.core.specs import BackendSpec, Timeouts

__all__ = ["emulator"]

PROTOCOLS = ["openai", "ollama", "anthropic"]
END = {"openai": r"\[DONE\]", "ollama": "done:true", "anthropic": "message_stop"}
STREAM = {"openai": "an event stream", "ollama": "an NDJSON stream", "anthropic": "an event stream"}
MID_ERROR = {
    "openai": "server_error: The server is overloaded",
    "ollama": "The server is overloaded",
    "anthropic": "overloaded_error: The server is overloaded",
}
REPLY = "the quick brown fox jumps over the lazy dog and runs far away into the green hills"

HTTP_FAULTS = {
    "http_401": r"HTTP 401 Unauthorized: .*fault http_401$",
    "http_404": r"HTTP 404 Not Found: .*fault http_404$",
    "http_429": r"HTTP 429 Too Many Requests, retry after 20 s: .*fault http_429$",
    "http_500": r"HTTP 500 Internal Server Error: .*fault http_500$",
    "http_503": r"HTTP 503 Service Unavailable: .*fault http_503$",
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(HTTP_FAULTS))
async def test_http_status_faults(emulator, protocol: str, fault: str) -> None:
    out = await collect(sim_backend(emulator.url, protocol, {"reply": REPLY, "fault": fault}))
    assert out.error is not None
    assert re.fullmatch(HTTP_FAULTS[fault], out.error.reason), out.error.reason
    assert [type(e) for e in out.events] == [RequestSent]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_html_instead_of_a_stream(emulator, protocol: str) -> None:
    out = await collect(sim_backend(emulator.url, protocol, {"reply": REPLY, "fault": "html_200"}))
    assert out.error is not None and out.error.reason == f"expected {STREAM[protocol]}, got text/html"


def mid_stream_reason(protocol: str, fault: str) -> str:
    return {
        "drop_mid": r"connection dropped after 5 tokens",
        "bad_json": r"malformed JSON frame: .+",
        "bad_utf8": r"invalid UTF-8 in stream",
        "huge_line": r"frame larger than 1 MiB",
        "error_frame": rf"server error mid-stream: {MID_ERROR[protocol]}.*",
        "no_end": rf"stream ended without {END[protocol]} after 5 tokens \(likely cut\)",
    }[fault]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", ["drop_mid", "bad_json", "bad_utf8", "huge_line", "error_frame", "no_end"])
async def test_mid_stream_faults_keep_the_tokens_before(emulator, protocol: str, fault: str) -> None:
    out = await collect(sim_backend(emulator.url, protocol, {"reply": REPLY, "fault": fault}))
    assert out.error is not None
    assert re.fullmatch(mid_stream_reason(protocol, fault), out.error.reason), out.error.reason
    assert isinstance(out.events[0], RequestSent) and isinstance(out.events[1], FirstByte)
    assert len(out.deltas) == 5
    assert REPLY.startswith("".join(d.text for d in out.deltas))
    ts = [e.t for e in out.events]
    assert ts == sorted(ts)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_first_token_timeout(emulator, protocol: str) -> None:
    backend = sim_backend(
        emulator.url, protocol, {"reply": REPLY, "fault": "stall_before"}, timeouts=Timeouts(first_token=0.4)
    )
    out = await collect(backend)
    assert out.error is not None and out.error.reason == "no token within 0.4 s"
    assert out.deltas == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_idle_timeout_after_tokens(emulator, protocol: str) -> None:
    backend = sim_backend(emulator.url, protocol, {"reply": REPLY, "fault": "stall_after"}, timeouts=Timeouts(idle=0.4))
    out = await collect(backend)
    assert out.error is not None and out.error.reason == "no bytes for 0.4 s after 5 tokens"
    assert len(out.deltas) == 5


async def test_total_timeout(emulator) -> None:
    backend = sim_backend(emulator.url, "openai", {"reply": REPLY, "fault": "stall_after"}, timeouts=Timeouts(total=0.5))
    out = await collect(backend)
    assert out.error is not None and out.error.reason == "turn exceeded 0.5 s"
    assert len(out.deltas) == 5


async def test_keepalives_and_role_chunks_do_not_count_as_a_first_token() -> None:
    role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    pieces = [role] + [b": keep-alive\n\n"] * 100
    script = chunked(pieces, end=False)
    script = [item if item != 0.0 else 0.05 for item in script]  # a byte every 50 ms, never a token
    async with RawServer(lambda seen: script) as server:
        spec = raw_spec("openai", server.url + "/v1", timeouts=Timeouts(first_token=0.5))
        out = await collect(make_backend(spec))
    assert out.error is not None and out.error.reason == "no token within 0.5 s"
    assert [type(e) for e in out.events] == [RequestSent, FirstByte]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("kind", PROTOCOLS)
async def test_connection_refused(kind: str) -> None:
    port = closed_port()
    out = await collect(make_backend(raw_spec(kind, f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else ""))))
    assert out.error is not None and out.error.reason == f"connection refused at 127.0.0.1:{port}"
    assert [type(e) for e in out.events] == [RequestSent]


def test_dns_failure_and_connect_timeout_reasons() -> None:
    exc = httpx2.ConnectError("[Errno -2] Name or service not known")
    exc.__cause__ = socket.gaierror(-2, "Name or service not known")
    t = Timeouts(connect=10)
    assert transport_error(exc, "http://gpu-box.lan:11434", t).reason == "DNS failure: cannot resolve host gpu-box.lan"
    assert (
        transport_error(httpx2.ConnectTimeout("timed out"), "https://api.example.com/v1", t).reason
        == "connect timeout: no connection to api.example.com:443 within 10 s"
    )


def test_retry_after_forms_and_error_snippets() -> None:
    import datetime as dt

    now = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert retry_after("20") == "20 s"
    assert retry_after("Wed, 01 Jan 2025 12:01:30 GMT", now) == "90 s"
    assert retry_after(None) is None
    assert body_message(b"<html><title>502 Bad Gateway</title><body>nginx</body></html>", "text/html") == "502 Bad Gateway"
    assert body_message(b'{"detail": "Not Found"}', "application/json") == "Not Found"
    assert body_message(b'{"error": {"message": "rate limited", "type": "x"}}', "application/json") == "rate limited"
    assert body_message(b"x" * 1000, "text/plain").endswith("…")


async def test_json_200_is_not_a_stream() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n"
    async with RawServer(lambda seen: [head, b'{"error": "streaming is off"}']) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert out.error is not None
    assert out.error.reason == "expected an event stream, got application/json: streaming is off"


async def test_key_echoed_by_the_server_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TD_ERR_KEY", "sk-live-echoed-999")
    body = b'{"error": {"message": "Incorrect API key provided: sk-live-echoed-999"}}'
    head = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with RawServer(lambda seen: [head, body]) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1", api_key_env="TD_ERR_KEY")))
    assert out.error is not None
    assert out.error.reason == "HTTP 401 Unauthorized: Incorrect API key provided: [redacted]"  # redacted before the cut
    assert server.seen[0].headers["authorization"] == "Bearer sk-live-echoed-999"


@pytest.mark.parametrize("frame", [
    b'data: {"error": {"message": "bad key %s via http://bob:%s@proxy/?key=%s"}}\n\n',
    b'data: {"bad key %s via http://bob:%s@proxy/?key=%s\n\n',
])
async def test_a_key_or_url_credential_echoed_mid_stream_is_redacted(monkeypatch: pytest.MonkeyPatch, frame: bytes) -> None:
    key, password, query = "lane-cred-0123456789", "pw-userinfo-4242", "qk-param-98765"
    monkeypatch.setenv("TD_LANE_CRED", key)  # known only as this lane's api_key_env (no _API_KEY suffix)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    body = frame % (key.encode(), password.encode(), query.encode())
    async with RawServer(lambda seen: [head, body, CLOSE]) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1", api_key_env="TD_LANE_CRED")))
    assert out.error is not None
    assert out.error.reason.count("[redacted]") >= 2 and "***" not in out.error.reason, out.error.reason
    for secret in (key, password, query):
        assert secret[:8] not in out.error.reason and secret[-8:] not in out.error.reason, out.error.reason


async def test_raw_drop_and_clean_close_without_end() -> None:
    frame = b'data: {"choices":[{"delta":{"content":"tok"}}]}\n\n'
    async with RawServer(lambda seen: chunked([frame] * 3, end=False) + [CLOSE]) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert out.error is not None and out.error.reason == "connection dropped after 3 tokens"
    assert len(out.deltas) == 3
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    async with RawServer(lambda seen: [head, frame * 2, CLOSE]) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert out.error is not None and out.error.reason == "stream ended without [DONE] after 2 tokens (likely cut)"


async def test_consumer_that_stops_early_leaves_the_client_usable(emulator) -> None:
    backend = sim_backend(emulator.url, "openai", {"reply": REPLY})
    try:
        t0 = time.monotonic()
        stream = backend.stream(request(), lambda: time.monotonic() - t0)
        seen = 0
        async for event in stream:
            seen += isinstance(event, TokenDelta)
            if seen == 2:
                break
        await stream.aclose()
        out = await collect(backend, request(turn=2), close=False)
        assert out.error is None and out.answer == REPLY
    finally:
        await backend.aclose()


def test_sim_lane_needs_the_emulator_url() -> None:
    with pytest.raises(ValueError, match="emulator"):
        make_backend(BackendSpec(name="s", kind="sim", profile="instant"))
