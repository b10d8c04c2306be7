"""The built-in LLM backend emulator: a real HTTP server for races and tests.

Invariant: the emulator speaks the OpenAI chat-completions SSE, Ollama NDJSON
and Anthropic Messages SSE protocols well enough for the official clients to
stream from it unchanged, with each token paced on a profile's schedule from
the request's arrival time. Clients steer it per request with the
``thunderdome_sim`` object (see ``directives.py``; faults in ``faults.py``).

Module map: ``profiles`` (timing), ``replies`` (tokenizer, text), ``directives``
(per-request steering), ``faults`` (catalogue), ``wire`` (frame encoders),
``http`` (HTTP/1.1, arrival stamps), ``stream`` (the paced runner), ``server``
(routing, log), ``precise_loop`` (timers on time), ``launch`` (thread /
process / command).
"""

from __future__ import annotations

from thunderdome.sim.directives import Directives
from thunderdome.sim.faults import FAULTS, QUIRKS
from thunderdome.sim.launch import (
    EmulatorHandle,
    ProcessEmulator,
    ThreadEmulator,
    serve_main,
    spawn_emulator_process,
    start_emulator_thread,
)
from thunderdome.sim.profiles import LONG_RACE_TOKENS, PROFILES, Profile, get_profile
from thunderdome.sim.replies import generate_text, tokenize
from thunderdome.sim.server import EmulatorServer

__all__ = [
    "FAULTS",
    "LONG_RACE_TOKENS",
    "PROFILES",
    "QUIRKS",
    "Directives",
    "EmulatorHandle",
    "EmulatorServer",
    "ProcessEmulator",
    "Profile",
    "ThreadEmulator",
    "generate_text",
    "get_profile",
    "serve_main",
    "spawn_emulator_process",
    "start_emulator_thread",
    "tokenize",
]
