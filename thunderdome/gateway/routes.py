"""Which requests an agent sends through the gateway are chat turns, and how each is read.

Invariant: a route names the wire protocol of a chat endpoint, and its frame
decoder and stream parser are exactly the classes the race's own client for
that protocol uses (``thunderdome.backends``), so a reply relayed through the
gateway is measured by the same code as a reply the race asked for itself.
Anything that is not a ``POST`` to one of ``CHAT_PATHS`` (model listings,
version probes, token counting) is relayed, never turned into a turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHAT_PATHS = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/v1/responses": "responses",
    "/responses": "responses",
    "/v1/messages": "anthropic",
    "/api/chat": "ollama",
}
"""Request path -> wire protocol of the chat endpoints the gateway meters."""


@dataclass(frozen=True)
class Route:
    """A chat endpoint: its protocol, and the client class whose decoder and
    parser read its replies."""

    protocol: str
    client: Any

    def decoder(self) -> Any:
        return self.client.decoder_class()

    def parser(self, lane: str, turn: int) -> Any:
        return self.client.parser_class(lane, turn)

    def streams(self, body: dict[str, Any]) -> bool:
        """The request asks for a streamed reply (Ollama streams by default)."""
        return body.get("stream", self.protocol == "ollama") is True


_ROUTES: dict[str, Route] = {}


def chat_route(method: str, path: str) -> Route | None:
    """The route of a chat request, None for anything else."""
    protocol = CHAT_PATHS.get(path.rstrip("/")) if method == "POST" else None
    if protocol is None:
        return None
    route = _ROUTES.get(protocol)
    if route is None:
        from thunderdome.backends import _client_class

        route = _ROUTES[protocol] = Route(protocol, _client_class(protocol))
    return route


__all__ = ["CHAT_PATHS", "Route", "chat_route"]
