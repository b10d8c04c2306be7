"""Local server discovery, against real HTTP servers on loopback ports."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thunderdome.core.discover import HOST, KnownServer, discover


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class _Server:
    """A tiny loopback server answering fixed JSON per path; records requests."""

    def __init__(self, routes: dict[str, object]) -> None:
        seen: list[tuple[str, str]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                seen.append(("GET", self.path))
                body = routes.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_finds_ollama_and_openai_servers_and_skips_the_rest():
    ollama = {"/api/tags": {"models": [{"name": "gpt-oss:120b", "model": "gpt-oss:120b"}, {"name": "llama3"}]}}
    openai = {"/v1/models": {"object": "list", "data": [{"id": "Qwen/Qwen3-8B"}, {"id": ""}, {"nope": 1}]}}
    garbage = {"/v1/models": "<html>not json</html>"}
    with _Server(ollama) as a, _Server(openai) as b, _Server(garbage) as c:
        closed = _free_port()  # nothing listens here
        servers = (
            KnownServer(a.port, "ollama", native="ollama"),
            KnownServer(b.port, "vllm"),
            KnownServer(c.port, "jan"),
            KnownServer(closed, "lmstudio"),
        )
        found = await discover(servers, timeout=2.0)
    assert [(s.name, s.kind, s.model) for s in found] == [
        ("ollama:gpt-oss:120b", "ollama", "gpt-oss:120b"),
        ("ollama:llama3", "ollama", "llama3"),
        ("vllm:Qwen3-8B", "openai", "Qwen/Qwen3-8B"),
    ]
    assert found[0].url == f"http://{HOST}:{a.port}"
    assert found[2].url == f"http://{HOST}:{b.port}/v1"
    assert a.seen == [("GET", "/api/tags")]  # an answering Ollama is not asked twice


async def test_ollama_port_falls_back_to_the_openai_listing():
    openai_only = {"/v1/models": {"data": [{"id": "phi4"}]}}
    with _Server(openai_only) as s:
        found = await discover((KnownServer(s.port, "ollama", native="ollama"),), timeout=2.0)
    assert [(x.kind, x.model) for x in found] == [("openai", "phi4")]


async def test_same_server_kind_on_two_ports_gets_unique_names():
    routes = {"/v1/models": {"data": [{"id": "m"}]}}
    with _Server(routes) as a, _Server(routes) as b:
        found = await discover((KnownServer(a.port, "llamacpp"), KnownServer(b.port, "llamacpp")), timeout=2.0)
    assert [s.name for s in found] == ["llamacpp:m", f"llamacpp:m@{b.port}"]


def test_discovery_only_targets_loopback():
    from thunderdome.core.discover import DEFAULT_SERVERS

    assert HOST == "127.0.0.1"
    assert {s.port for s in DEFAULT_SERVERS} == {11434, 1234, 8080, 9931, 8000, 30000, 1337}


@pytest.mark.parametrize("env", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_proxies_in_the_environment_are_ignored(monkeypatch, env):
    monkeypatch.setenv(env, "http://127.0.0.1:9")  # would refuse every request
    routes = {"/v1/models": {"data": [{"id": "m"}]}}
    with _Server(routes) as s:
        found = await discover((KnownServer(s.port, "vllm"),), timeout=2.0)
    assert [x.model for x in found] == ["m"]
