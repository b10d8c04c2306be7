"""A hostile OpenAI-compatible server on loopback, for the leak and terminal tests.

It echoes every credential it receives (the bearer key, basic-auth userinfo,
the URL's query) back into what a person sees: split across the reasoning and
the answer channel of a streamed reply (``model: echo``), or into an error
body long enough that the key straddles the 160-character cut (``model:
deny``). Every reply and error also carries terminal escapes: a title change,
a screen clear, an OSC 52 clipboard write, BEL and 8-bit CSI/OSC. It runs in
a thread with the stdlib HTTP server, so CLI child processes can reach it.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

ESCAPES = "\x1b]0;pwned-title\x07\x1b[2J\x1b[H\x1b]52;c;cHduZWQ=\x07\x9b31m\x9d0;c1-title\x07"
"""Title change, clear screen, cursor home, OSC 52 clipboard write, 8-bit CSI and OSC."""


def _credentials(handler: BaseHTTPRequestHandler) -> list[str]:
    found: list[str] = []
    auth = handler.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        found.append(auth[7:])
    elif auth.lower().startswith("basic "):
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        found += [user, password]
    for header in ("x-api-key",):
        if handler.headers.get(header):
            found.append(handler.headers[header])
    query = urlsplit(handler.path).query
    found += [unquote(part.partition("=")[2]) for part in query.split("&") if "=" in part]
    return [c for c in found if c]


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _delta(field: str, text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {field: text}, "finish_reason": None}]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # model lists (discovery): nothing here
        self._send(404, b'{"error": "no"}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        secrets = " and ".join(_credentials(self))
        if body.get("model") == "deny":
            message = "x" * 125 + f" invalid credentials {secrets} " + ESCAPES + " try again"
            self._send(401, json.dumps({"error": {"message": message, "type": "auth"}}).encode(), "application/json")
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        half = len(secrets) // 2
        frames = [
            _delta("reasoning_content", f"I was sent {secrets[:half]}"),
            _delta("content", f"{secrets[half:]} — thanks! " + ESCAPES),
            _delta("content", " The end."),
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}},
        ]
        for frame in frames:
            self.wfile.write(_sse(frame))
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class HostileServer:
    """``with HostileServer() as server: server.url`` (``http://127.0.0.1:PORT``)."""

    def __enter__(self) -> "HostileServer":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def key_pieces(secret: str, size: int = 8) -> Iterator[str]:
    """Every ``size``-character piece of ``secret``."""
    for i in range(len(secret) - size + 1):
        yield secret[i : i + size]
