"""The protocol registry: which path speaks which protocol, with which encoder.

Invariant: the four chat protocols are named ``openai``, ``ollama``,
``anthropic`` and ``responses`` everywhere (routes, encoders, the request log).
"""

from __future__ import annotations

from thunderdome.sim.wire import AnthropicEncoder, Encoder, OllamaEncoder, OpenAIEncoder, ResponsesEncoder

ENCODERS: dict[str, type[Encoder]] = {
    "openai": OpenAIEncoder,
    "ollama": OllamaEncoder,
    "anthropic": AnthropicEncoder,
    "responses": ResponsesEncoder,
}

CHAT_ROUTES: dict[str, str] = {
    "/v1/chat/completions": "openai",
    "/api/chat": "ollama",
    "/v1/messages": "anthropic",
    "/v1/responses": "responses",
}
"""POST path -> protocol."""

__all__ = ["CHAT_ROUTES", "ENCODERS"]
