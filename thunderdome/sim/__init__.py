"""The built-in LLM backend emulator: a real HTTP server for races and tests.

Invariant: the emulator speaks the OpenAI chat-completions SSE, OpenAI
Responses SSE, Ollama NDJSON and Anthropic Messages SSE protocols, native
tool calls included, well enough for the official clients to stream from it
unchanged, with each token paced on a profile's schedule from the request's
arrival time. Clients steer it per request with the
``thunderdome_sim`` object (see ``directives.py``; faults in ``faults.py``).

Module map: ``profiles`` (timing), ``replies`` (tokenizer, text), ``directives``
(per-request steering), ``faults`` (catalogue), ``conversation`` (what a
request says), ``tools`` (the shell tool and the call a sim lane makes),
``wire`` (frame encoders, one module per protocol),
``protocols`` (routes), ``http`` (HTTP/1.1, arrival stamps), ``stream``
(the paced runner), ``server`` (routing, log), ``precise_loop`` (timers on
time), ``launch`` (thread / process / command), ``options`` (the one list of
sim lane options).

Importing this package loads none of them: each name below loads its module
on first use, so a backends file with sim lanes (which needs only
``profiles`` and ``options``) loads without the server or httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Directives": "directives",
    "FAULTS": "faults",
    "QUIRKS": "faults",
    "EmulatorHandle": "launch",
    "ProcessEmulator": "launch",
    "ThreadEmulator": "launch",
    "serve_main": "launch",
    "spawn_emulator_process": "launch",
    "start_emulator_thread": "launch",
    "SIM_OPTIONS": "options",
    "LONG_RACE_TOKENS": "profiles",
    "PROFILES": "profiles",
    "Profile": "profiles",
    "get_profile": "profiles",
    "generate_text": "replies",
    "tokenize": "replies",
    "EmulatorServer": "server",
}
"""Where each re-exported name lives (module of this package)."""


def __getattr__(name: str) -> Any:
    """Lazy re-exports: the module is imported when a name is first asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'thunderdome.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(f"thunderdome.sim.{home}"), name)


__all__ = sorted(_HOMES)
