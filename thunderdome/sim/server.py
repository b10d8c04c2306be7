"""The emulator: one asyncio HTTP/1.1 server speaking OpenAI (chat completions and
Responses), Ollama and Anthropic, with native tool calls in all of them.

Invariant: every chat request is answered from (profile, directives, reply
table) alone and paced from its own arrival time (``Request.t_arrival``, the
moment the whole request had reached the server), so concurrent streams never slow
each other down beyond the event loop's latency; nothing proportional to the
reply's length runs before its first token. What is said comes from
``tools.choose_answer``: a call of the offered shell tool, the closing text
after a tool result, or the reply itself (the directive's, else the reply
table's, else a known task's reference: ``task_replies``). Every chat request leaves exactly
one record in ``log`` (kept for the last 10 000), updated as its tokens go out.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Mapping
from urllib.parse import parse_qs

from thunderdome.sim import conversation, thinking
from thunderdome.sim import directives as directives_mod
from thunderdome.sim.faults import HTML_PAGE, HTTP_FAULTS, REPLY_FAULTS
from thunderdome.sim.http import (
    ClientGone,
    Request,
    Responder,
    serve_requests,
    start_http_server,
)
from thunderdome.sim.profiles import PROFILES, Profile
from thunderdome.sim.replies import match_table
from thunderdome.sim.slots import SlotPool, metrics_text
from thunderdome.sim.stream import StreamRun
from thunderdome.sim.task_replies import TaskReplies
from thunderdome.sim.tools import ToolCallReply, choose_answer
from thunderdome.sim.protocols import CHAT_ROUTES, ENCODERS
from thunderdome.sim.wire import Encoder, Stats


LOG_SIZE = 10_000
OLLAMA_VERSION = "0.11.0"


def _max_tokens(protocol: str, body: Mapping[str, Any]) -> int | None:
    if protocol == "ollama":
        opts = body.get("options")
        value = opts.get("num_predict") if isinstance(opts, dict) else None
        if isinstance(value, int) and value < 0:
            return None
    elif protocol == "openai":
        value = body.get("max_completion_tokens", body.get("max_tokens"))
    elif protocol == "responses":
        value = body.get("max_output_tokens")
    else:
        value = body.get("max_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        name = "max_output_tokens" if protocol == "responses" else "max_tokens"
        raise ValueError(f"{name} must be a non-negative integer")
    return value


class EmulatorServer:
    """The emulator on the current event loop. ``replies`` maps a substring of
    the last user message to the reply text used when no directive gives one."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        replies: Mapping[str, str] | None = None,
        task_replies: TaskReplies | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.time_scale = time_scale
        self.replies: dict[str, str] = dict(replies or {})
        self.task_replies = task_replies
        """Task prompts it answers with the task's reference (``thunderdome sim serve``)."""
        self.profiles: dict[str, Profile] = dict(PROFILES)
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.pools: dict[str, SlotPool] = {}
        """Per model asked with a ``slots`` limit: its slots and queue (the
        first such request's ``slots`` sets its size)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> list[dict[str, Any]]:
        """A copy of the per-request records, oldest first."""
        return [dict(r) for r in self._log]

    async def start(self) -> int:
        """Bind and listen; returns the port (useful with port 0)."""
        self._server = await start_http_server(self._on_connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    # -- connections -----------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_requests(reader, writer, self._dispatch, self._conns, name="emulator")

    async def _dispatch(self, req: Request, out: Responder) -> None:
        protocol = CHAT_ROUTES.get(req.path)
        if protocol is not None:
            if req.method != "POST":
                await out.send_json(405, ENCODERS[protocol]("").error_body(405, f"use POST for {req.path}"))
            else:
                await self._chat(req, out, protocol)
            return
        getters = {
            "/health": lambda: {"status": "ok"},
            "/v1/models": self._models,
            "/api/tags": lambda: {"models": [self._ollama_tag(p) for p in self.profiles.values()]},
            "/api/version": lambda: {"version": OLLAMA_VERSION},
            "/sim/log": lambda: self._log_query(req.query),
            "/slots": lambda: self._slots(req.query),
        }
        getter = getters.get(req.path)
        if req.path == "/metrics" and req.method == "GET":
            await out.send_full(200, metrics_text(self.pools).encode(), "text/plain; version=0.0.4")
        elif getter is None:
            message = f"no route for {req.method} {req.path}"
            await out.send_json(404, {"error": {"message": message, "type": "not_found"}})
        elif req.method != "GET":
            message = f"use GET for {req.path}"
            await out.send_json(405, {"error": {"message": message, "type": "method_not_allowed"}})
        else:
            await out.send_json(200, getter())

    def _models(self) -> dict[str, Any]:
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "thunderdome-sim"} for n in self.profiles]
        return {"object": "list", "data": data}

    @staticmethod
    def _ollama_tag(p: Profile) -> dict[str, Any]:
        return {
            "name": f"{p.name}:latest",
            "model": f"{p.name}:latest",
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 0,
            "digest": "0" * 64,
            "details": {
                "format": "sim",
                "family": "thunderdome-sim",
                "parameter_size": "0B",
                "quantization_level": "none",
            },
        }

    def _log_query(self, query: str) -> list[dict[str, Any]]:
        wanted = parse_qs(query).get("id", [None])[-1]
        return [dict(r) for r in self._log if wanted is None or r["id"] == wanted]

    def _slots(self, query: str) -> list[dict[str, Any]]:
        """llama.cpp's ``/slots``: the slots of ``?model=`` (else of every
        model with a ``slots`` limit); [] when nothing is limited."""
        wanted = parse_qs(query).get("model", [None])[-1]
        return [s for m, p in self.pools.items() if wanted in (None, m) for s in p.slots_json()]

    @asynccontextmanager
    async def _slot(self, model: str, d: directives_mod.Directives, record: dict[str, Any], out: Responder,
                    stats: Stats) -> AsyncIterator[None]:
        """Run the block in one of ``model``'s slots when the request set
        ``slots``, after waiting its turn; ``stats.t_start``: when it got one."""
        if d.slots is None:
            yield
            return
        pool = self.pools.setdefault(model, SlotPool(d.slots))
        async with pool.slot(record, out.client_gone):
            stats.t_start = record["t_start"] = time.monotonic()
            yield

    def _profile(self, model: Any) -> Profile | None:
        if not isinstance(model, str):
            return None
        if model in self.profiles:
            return self.profiles[model]
        base, _, _tag = model.partition(":")
        return self.profiles.get(base)

    def _table_reply(self, prompt: str) -> str | None:
        """The reply table's answer to ``prompt``, else a known task's reference."""
        found = match_table(self.replies, prompt)
        if found is None and self.task_replies is not None:
            found = self.task_replies.answer(prompt)
        return found

    # -- chat --------------------------------------------------------------------

    async def _chat(self, req: Request, out: Responder, protocol: str) -> None:
        enc_cls = ENCODERS[protocol]
        try:
            body = req.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            await out.send_json(400, enc_cls("").error_body(400, f"malformed JSON body: {reason}"))
            return
        if not isinstance(body, dict):
            await out.send_json(400, enc_cls("").error_body(400, "the JSON body must be an object"))
            return
        model = body.get("model")
        try:
            d = directives_mod.parse(body, req.headers)
            max_tokens = _max_tokens(protocol, body)
            conv = conversation.read(protocol, body)
        except ValueError as exc:
            await out.send_json(400, enc_cls(str(model)).error_body(400, str(exc)))
            return
        profile = self._profile(model)
        if profile is None:
            msg = {
                "ollama": f'model "{model}" not found, try pulling it first',
                "anthropic": f"model: {model}",
            }.get(protocol, f"The model `{model}` does not exist (known: {', '.join(self.profiles)})")
            await out.send_json(404, enc_cls(str(model)).error_body(404, msg))
            return
        tag = req.headers.get("x-thunderdome-tag") or f"req-{next(self._ids)}"
        record: dict[str, Any] = {
            "id": tag,
            "model": model,
            "protocol": protocol,
            "t_arrival": req.t_arrival,
            "t_head": req.t_head,
            "t_received": req.t_received,
            "t_start": req.t_arrival,
            "t_first_token": None,
            "t_last_token": None,
            "tokens": 0,
            "generated": 0,
            "fault": d.fault_label,
            "status": 200,
            "stream": None,
            "finish_reason": None,
            "t_end": None,
            "client_gone": False,
            "tool": None,
            "signed_thinking": 0,
        }
        self._log.append(record)
        try:
            await self._answer(req, out, protocol, body, d, conv, profile, max_tokens, record)
        except ClientGone:
            record["client_gone"] = True
            raise
        finally:
            record["t_end"] = time.monotonic()

    async def _answer(
        self,
        req: Request,
        out: Responder,
        protocol: str,
        body: dict[str, Any],
        d: directives_mod.Directives,
        conv: conversation.Conversation,
        profile: Profile,
        max_tokens: int | None,
        record: dict[str, Any],
    ) -> None:
        model = str(body.get("model"))
        if "trickle" in d.quirks:
            out.trickle = True
        if d.fault in HTTP_FAULTS:
            status = HTTP_FAULTS[d.fault]
            record["status"] = status
            headers = {"Retry-After": "20"} if status == 429 else None
            message = f"thunderdome-sim fault {d.fault}"
            await out.send_json(status, ENCODERS[protocol](model).error_body(status, message), headers)
            return
        if protocol == "anthropic":  # thinking sent back must be ours, and present where the API insists
            thinks = bool(profile.reasoning_tokens or d.reasoning)  # this model streams thinking
            problem, record["signed_thinking"] = thinking.check(body, thinks)
            if problem:
                record["status"] = 400
                await out.send_json(400, ENCODERS[protocol](model).error_body(400, problem))
                return
        if d.fault == "html_200":
            await out.send_full(200, HTML_PAGE, "text/html; charset=utf-8")
            return
        reply = choose_answer(
            shell_tool=conv.shell_tool,
            after_tool_result=conv.after_tool_result,
            table_reply=self._table_reply(conv.last_user),
            reply=d.reply,
            tokens=d.tokens,
            reasoning=d.reasoning,
            wrong_reply=d.wrong_reply,
            wrong_rate=d.wrong_rate,
            seed=d.seed,
            profile_reply_tokens=profile.reply_tokens,
            profile_reasoning_tokens=profile.reasoning_tokens,
            max_tokens=max_tokens,
            flood_at=d.fault_at if d.fault in REPLY_FAULTS else None,
        )
        call = reply.call if isinstance(reply, ToolCallReply) else None
        record["tool"] = call.name if call else None
        stream = body.get("stream", protocol == "ollama") is True
        opts = body.get("stream_options")
        enc: Encoder = ENCODERS[protocol](
            model,
            reasoning_field=d.reasoning_field,
            include_usage=isinstance(opts, dict) and opts.get("include_usage") is True,
            timings=d.timings,
            request_metrics=d.request_metrics,
            quirks=d.quirks,
            tool_call=call,
            request=body,
        )
        stats = Stats(prompt_tokens=conv.prompt_tokens, t_arrival=req.t_arrival, t_received=req.t_received,
                      cached_tokens=min(d.cached_tokens, conv.prompt_tokens))
        scale = d.time_scale if d.time_scale is not None else self.time_scale
        record["stream"] = stream
        record["wrong"] = reply.wrong
        async with self._slot(model, d, record, out, stats):
            run = StreamRun(out, enc, reply, profile.schedule(d.seed), d, stats, record, scale)
            if stream:
                await run.run()
            else:
                await run.run_whole()
        record["finish_reason"] = reply.finish_reason if stats.t_end is not None else None


__all__ = ["EmulatorServer"]
