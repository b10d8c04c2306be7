"""Lanes start on warm connections: the warm-up GET opens the connection that
the race's request then reuses (one TCP connection per lane)."""

from __future__ import annotations

import asyncio

import pytest

from thunderdome.backends import make_backend
from thunderdome.backends.base import ChatRequest
from thunderdome.race.runner import warm_up
from thunderdome.core.specs import BackendSpec

SSE = (
    b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class CountingServer:
    """A tiny keep-alive HTTP/1.1 server that counts connections and paths."""

    def __init__(self) -> None:
        self.connections = 0
        self.paths: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                self.paths.append(f"{method} {path}")
                length = next((int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length:")), 0)
                if length:
                    await reader.readexactly(length)
                if method == "GET":
                    body = b'{"object":"list","data":[]}'
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (len(SSE), SSE))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server():
    counting = CountingServer()
    srv = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    counting.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1"
    yield counting
    srv.close()
    await srv.wait_closed()


async def test_race_request_reuses_the_warm_connection(server):
    backend = make_backend(BackendSpec(name="a", kind="openai", url=server.url, model="m"))
    await warm_up([backend])
    assert server.paths == ["GET /v1/models"]
    events = [e async for e in backend.stream(ChatRequest([{"role": "user", "content": "x"}], 5, "a"), lambda: 0.0)]
    await backend.aclose()
    assert server.paths == ["GET /v1/models", "POST /v1/chat/completions"]
    assert server.connections == 1
    assert any(getattr(e, "text", "") == "hi" for e in events)


async def test_warm_up_failure_is_not_fatal():
    backend = make_backend(BackendSpec(name="a", kind="ollama", url="http://127.0.0.1:9", model="m"))
    assert await backend.warm_up(timeout=1.0) is False
    await backend.aclose()
