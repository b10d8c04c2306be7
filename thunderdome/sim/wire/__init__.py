"""Frame encoders: the emulator's bytes, one module per protocol.

Invariant: each encoder method returns the exact bytes of one or more
complete frames (OpenAI ``data: {json}\\n\\n``, Ollama ``{json}\\n``,
Anthropic and Responses ``event: X\\ndata: {json}\\n\\n``), shaped as the real
servers shape them, so the official client libraries parse the stream
unchanged. Per-token frames are cut from templates (the frame ``dumps``
makes with a marker for the text, split once per encoder) and are
byte-identical to ``dumps`` of the whole dict. The deliberately broken frames
(``bad_json``, ``bad_utf8``, ``huge_prefix``) are the only exceptions, and
they say so in their names.

The modules: ``base`` (``Encoder``, ``Stats``, the JSON bytes and templates,
shared), ``chat`` (OpenAI Chat Completions), ``responses`` (OpenAI
Responses), ``anthropic`` (Anthropic Messages), ``ollama`` (Ollama's native
chat). Every public name is re-exported here.
"""

from __future__ import annotations

from thunderdome.sim.tools import FINISH_TOOL
from thunderdome.sim.wire.anthropic import AnthropicEncoder
from thunderdome.sim.wire.base import Encoder, Stats, dumps, dumps_str, template
from thunderdome.sim.wire.chat import OpenAIEncoder, vllm_metrics
from thunderdome.sim.wire.ollama import OllamaEncoder, ollama_time
from thunderdome.sim.wire.responses import ResponsesEncoder

__all__ = [
    "FINISH_TOOL",
    "AnthropicEncoder",
    "Encoder",
    "OllamaEncoder",
    "OpenAIEncoder",
    "ResponsesEncoder",
    "Stats",
    "dumps",
    "dumps_str",
    "ollama_time",
    "template",
    "vllm_metrics",
]
