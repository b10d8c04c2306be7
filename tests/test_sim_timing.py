"""The emulator keeps time under load: lazy replies, O(1) schedule, arrival
stamps, template frames identical to ``dumps``, and the precise-timer loop.

Laziness is checked with counters and hooks (``Reply.made``, the log's
``generated`` field, a ``Profile.offsets`` that raises), never with timing.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import selectors
import socket
import time

import pytest

from thunderdome.sim import PROFILES, EmulatorServer, Profile, generate_text, tokenize
from thunderdome.sim import precise_loop
from thunderdome.sim import replies as R
from thunderdome.sim.replies import Reply, choose_reply, generated_text_tokens, iter_tokens
from thunderdome.sim.wire import AnthropicEncoder, OllamaEncoder, OpenAIEncoder, Stats, dumps

MSGS = [{"role": "user", "content": "Write a long essay."}]
TRICKY = ["plain", ' "quoted" ', "back\\slash", "new\nline\ttab", "\x00\x01\x1f", "ünïcödé — ✅ 🚀", "\u2028\u2029", "</script>", ""]


def _old_generate(bank: tuple[str, ...], n: int, seed: int, title: str) -> str:
    """The eager generator the emulator used before (the reference text)."""
    if n <= 0:
        return ""
    rng = random.Random(f"text:{seed}:{len(bank)}")
    parts = [title]
    count = len(tokenize(title))
    while count < n:
        para = " ".join(rng.choice(bank) for _ in range(rng.randint(3, 6))) + "\n\n"
        parts.append(para)
        count += len(tokenize(para))
    return "".join(tokenize("".join(parts))[:n])


def _choose(**kw):
    args = dict(reply=None, tokens=None, reasoning=None, wrong_reply=None, wrong_rate=0.0, seed=0,
                profile_reply_tokens=50, profile_reasoning_tokens=0, table_reply=None, max_tokens=None)
    args.update(kw)
    return choose_reply(**args)


# --- lazy text and replies --------------------------------------------------------------------


def test_lazy_generation_gives_the_same_text_as_the_eager_reference():
    for seed in range(6):
        for n in (0, 1, 2, 9, 10, 11, 57, 878, 3000):
            assert generate_text(n, seed) == _old_generate(R._ESSAY, n, seed, R._TITLE)
            assert R.generate_reasoning(n, seed) == _old_generate(R._REASONING, n, seed, "")
            assert list(generated_text_tokens(n, seed)) == tokenize(generate_text(n, seed))


def test_iter_tokens_is_tokenize():
    for text in TRICKY + [generate_text(300, 4)]:
        assert list(iter_tokens(text)) == tokenize(text)


def test_first_token_of_a_100k_reply_generates_one_paragraph_not_100k():
    reply = _choose(tokens=100_000, seed=3)
    assert reply.made == 0  # choosing the reply generates nothing
    tokens = reply.tokens()
    first = next(tokens)
    assert first[1] == "answer" and not first[2]
    assert 0 < reply.made < 300
    rest = sum(1 for _ in tokens)
    assert rest == 99_999 and reply.made == 100_000 and reply.finish_reason == "stop"


@pytest.mark.parametrize(
    ("cap", "n", "expect_n", "finish"),
    [(None, 5, 5, "stop"), (5, 5, 5, "stop"), (4, 5, 4, "length"), (0, 5, 0, "length"), (0, 0, 0, "stop"), (3, 0, 0, "stop")],
)
def test_reply_cap_and_finish_reason(cap, n, expect_n, finish):
    reply = _choose(reply="".join(tokenize(generate_text(n, 1))), max_tokens=cap)
    out = list(reply.tokens())
    assert len(out) == expect_n and reply.finish_reason == finish
    assert [last for _, _, last in out] == [False] * (expect_n - 1) + [True] * (expect_n > 0)


def test_finish_reason_is_known_when_the_last_token_is_yielded():
    reply = Reply(iter_tokens("a b"), iter_tokens(" c d e"), max_tokens=3)
    seen = []
    for text, channel, last in reply.tokens():
        seen.append((text, channel, last, reply.finish_reason))
    assert seen == [("a", "reasoning", False, None), (" b", "reasoning", False, None), (" c", "answer", True, "length")]


def test_reasoning_then_answer_lazily():
    reply = _choose(reply="ok then", profile_reasoning_tokens=40)
    out = list(reply.tokens())
    assert [c for _, c, _ in out] == ["reasoning"] * 40 + ["answer"] * 2
    assert "".join(t for t, c, _ in out if c == "answer") == "ok then"


# --- the schedule -------------------------------------------------------------------------------


def test_schedule_is_random_access_and_matches_offsets():
    p = PROFILES["cloud"]
    sched = p.schedule(5)
    offs = p.offsets(2000, seed=5)
    assert [sched.due(i) for i in (1999, 0, 1000, 7)] == [offs[1999], offs[0], offs[1000], offs[7]]
    assert offs[0] == p.ttft


def test_schedule_stays_increasing_even_with_wild_jitter():
    p = Profile("wild", ttft=0.1, tps=50.0, jitter=3.0)
    offs = p.offsets(5000, seed=1)
    assert all(b > a for a, b in zip(offs, offs[1:]))
    assert max(abs(o - (p.ttft + i / p.tps)) for i, o in enumerate(offs)) < 0.5 / p.tps


async def test_the_server_never_precomputes_the_schedule(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the server must not build a per-request offsets list")

    monkeypatch.setattr(Profile, "offsets", refuse)
    server = EmulatorServer(time_scale=0.01)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = json.dumps({"model": "instant", "messages": MSGS, "thunderdome_sim": {"tokens": 30}}).encode()
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        obj = json.loads(await asyncio.wait_for(reader.readexactly(length), 20))
        assert obj["choices"][0]["message"]["content"] == generate_text(30)
        writer.close()
    finally:
        await server.stop()


# --- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
async def emu():
    async with EmulatorServer(time_scale=1.0) as server:
        yield server


async def _post(port: int, body: dict, tag: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    raw = json.dumps(body).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-thunderdome-tag: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (tag.encode(), len(raw), raw)
    )
    await writer.drain()
    return reader, writer


async def test_a_100k_token_stream_sends_its_first_token_before_generating_the_rest(emu):
    body = {"model": "instant", "messages": MSGS, "stream": True, "thunderdome_sim": {"tokens": 100_000}}
    reader, writer = await _post(emu.port, body, "big")
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        while True:  # chunks until the first one with content
            frame = await asyncio.wait_for(reader.readuntil(b"\n\n"), 20)
            if b'"content":"' in frame and b'"content":""' not in frame:
                break
        rec = emu.log[-1]
        assert rec["id"] == "big" and rec["tokens"] >= 1
        assert 0 < rec["generated"] < 300  # one paragraph, not 100 000 tokens
    finally:
        writer.close()


async def test_the_schedule_starts_when_the_body_is_in_not_at_the_head(emu):
    """Like httpx: the head in one write, the body in another, later."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    body = json.dumps({"model": "instant", "messages": MSGS, "stream": True, "thunderdome_sim": {"reply": "hi"}}).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-thunderdome-tag: split\r\nContent-Length: %d\r\n\r\n" % len(body))
    await writer.drain()
    await asyncio.sleep(0.05)  # let the server read the head; the assertions below are on order only
    t_body = time.monotonic()
    writer.write(body)
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 20)
    writer.close()
    rec = emu.log[-1]
    assert rec["id"] == "split"
    assert rec["t_head"] < t_body <= rec["t_arrival"] <= rec["t_received"]
    assert rec["t_first_token"] - t_body >= PROFILES["instant"].ttft  # never early for the client either


async def test_pipelined_request_is_paced_from_when_the_server_turns_to_it(emu):
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    reqs = b""
    for tag in (b"one", b"two"):
        body = json.dumps({"model": "instant", "messages": MSGS, "thunderdome_sim": {"reply": "a b c"}}).encode()
        reqs += b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-thunderdome-tag: %s\r\nContent-Length: %d\r\n\r\n%s" % (tag, len(body), body)
    writer.write(reqs)
    await writer.drain()
    for _ in range(2):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        await reader.readexactly(int(re.search(rb"Content-Length: (\d+)", head).group(1)))
    writer.close()
    one, two = emu.log[-2], emu.log[-1]
    assert (one["id"], two["id"]) == ("one", "two")
    assert two["t_arrival"] >= one["t_end"]
    assert two["t_last_token"] - two["t_arrival"] >= PROFILES["instant"].e2e(3) - PROFILES["instant"].jitter / PROFILES["instant"].tps


async def test_non_stream_100k_reply_is_whole(emu):
    body = {"model": "instant", "messages": MSGS, "thunderdome_sim": {"tokens": 100_000, "time_scale": 0.0, "seed": 2}}
    reader, writer = await _post(emu.port, body, "whole")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    obj = json.loads(await asyncio.wait_for(reader.readexactly(int(re.search(rb"Content-Length: (\d+)", head).group(1))), 30))
    writer.close()
    assert obj["usage"]["completion_tokens"] == 100_000
    assert obj["choices"][0]["message"]["content"] == generate_text(100_000, 2)
    assert emu.log[-1]["generated"] == 100_000


# --- frames: templates are byte-identical to dumps -------------------------------------------


def _stats() -> Stats:
    return Stats(prompt_tokens=7, t_arrival=1.0, t_received=1.0)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_openai_token_frames_equal_dumps(field):
    enc = OpenAIEncoder("m\"odel", reasoning_field=field)
    for text in TRICKY:
        for channel, key in (("answer", "content"), ("reasoning", field)):
            obj = {
                "id": enc.id, "object": "chat.completion.chunk", "created": enc.created, "model": 'm"odel',
                "system_fingerprint": "thunderdome-sim",
                "choices": [{"index": 0, "delta": {key: text}, "logprobs": None, "finish_reason": None}],
            }
            assert enc.token(text, channel, None, _stats()) == b"data: " + dumps(obj) + b"\n\n"


def test_ollama_token_frames_equal_dumps():
    enc = OllamaEncoder("thinker:latest")
    for text in TRICKY:
        for channel in ("answer", "reasoning"):
            frame = enc.token(text, channel, None, _stats())
            assert frame.endswith(b"\n") and frame.count(b"\n") == 1
            obj = json.loads(frame)
            assert dumps(obj) + b"\n" == frame  # dumps' key order and separators, byte for byte
            message = {"role": "assistant", "content": text} if channel == "answer" else {"role": "assistant", "content": "", "thinking": text}
            assert obj == {"model": "thinker:latest", "created_at": obj["created_at"], "message": message, "done": False}
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", obj["created_at"])


def test_anthropic_delta_frames_equal_dumps():
    enc = AnthropicEncoder("claude")
    for kind, channel in (("thinking", "reasoning"), ("text", "answer")):
        for text in TRICKY:
            frame = enc.token(text, channel, None, _stats())
            delta = {"type": "text_delta", "text": text} if kind == "text" else {"type": "thinking_delta", "thinking": text}
            want = {"type": "content_block_delta", "index": enc.index, "delta": delta}
            assert frame.endswith(b"event: content_block_delta\ndata: " + dumps(want) + b"\n\n")
    assert enc.index == 1


# --- the precise loop ---------------------------------------------------------------------------


def test_precise_selector_reports_events_and_falls_back(monkeypatch):
    a, b = socket.socketpair()
    sel = precise_loop.PreciseSelector()
    try:
        sel.register(a, selectors.EVENT_READ, "a")
        assert sel.select(0.001) == []
        b.send(b"x")
        assert [(k.data, ev) for k, ev in sel.select(1.0)] == [("a", selectors.EVENT_READ)]

        def too_big(*_a):
            raise ValueError("filedescriptor out of range in select()")

        monkeypatch.setattr(precise_loop.select, "select", too_big)
        assert [k.data for k, _ in sel.select(1.0)] == ["a"]
    finally:
        sel.close()
        a.close()
        b.close()


def test_precise_loop_sleeps_are_never_early_and_serve_sockets():
    loop = precise_loop.new_precise_loop()

    async def main() -> None:
        for d in (0.0004, 0.0013, 0.002):
            start = time.monotonic()
            await asyncio.sleep(d)
            assert time.monotonic() - start >= d
        server = EmulatorServer(time_scale=0.01)
        await server.start()
        try:
            for k in range(3):
                await asyncio.sleep(0.01)  # polls happen before the request is sent
                t_send = time.monotonic()
                reader, writer = await _post(server.port, {"model": "instant", "messages": MSGS, "stream": True, "thunderdome_sim": {"reply": "x y"}}, f"p{k}")
                raw = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 20)
                writer.close()
                assert b"[DONE]" in raw
                rec = server.log[-1]
                # stamped at the poll that saw the bytes: never before they were sent
                assert t_send <= rec["t_arrival"] <= rec["t_received"]
                assert precise_loop.last_poll() is not None
        finally:
            await server.stop()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert precise_loop.last_poll() is None  # a closed loop leaves no stale poll time
    assert precise_loop.tighten_timer_slack() in (True, False)
