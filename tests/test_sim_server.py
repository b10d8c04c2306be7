"""The emulator over real loopback HTTP: protocols, pacing, routes, launching."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _processes import still_running_after  # type: ignore[import-not-found]
from thunderdome.sim import (
    PROFILES,
    EmulatorServer,
    generate_text,
    get_profile,
    serve_main,
    spawn_emulator_process,
    start_emulator_thread,
    tokenize,
)

SCALE = 0.02
REPLY = "Hello, wörld — ünïcode 🚀 test!\nSecond line with code: `kill -9 1234`."
MSGS = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def emu():
    server = EmulatorServer(time_scale=SCALE, replies={"magic word": "table reply text"})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(emu):
    async with httpx2.AsyncClient(base_url=emu.url, timeout=30) as c:
        yield c


def sse_frames(raw: bytes) -> list[tuple[str | None, str]]:
    """(event, data) per SSE frame; comment-only frames are returned as (':', text)."""
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block:
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                event = ":"
                data.append(line)
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            else:
                raise AssertionError(f"malformed SSE line {line!r}")
        out.append((event, "\n".join(data)))
    return out


async def post_raw(client: httpx2.AsyncClient, path: str, body: dict, headers=None) -> tuple[httpx2.Response, bytes]:
    async with client.stream("POST", path, json=body, headers=headers) as resp:
        raw = b"".join([b async for b in resp.aiter_bytes()])
    return resp, raw


# --- tokenizer and text --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokenize_rejoins_exactly(text):
    toks = tokenize(text)
    assert "".join(toks) == text
    assert all(toks)


def test_tokenize_pieces():
    assert tokenize("Hello, world!\n  x") == ["Hello", ",", " world", "!", "\n", "  ", "x"]
    assert tokenize("abcdefghijkl 12345") == ["abcdefgh", "ijkl", " 123", "45"]


def test_generated_text_has_exact_length_and_is_deterministic():
    for n in (0, 1, 7, 878):
        assert len(tokenize(generate_text(n, seed=3))) == n
    assert generate_text(50, seed=1) == generate_text(50, seed=1)
    assert generate_text(200, seed=1) != generate_text(200, seed=2)
    assert "—" in generate_text(5)


def test_profiles_match_public_race():
    cloud, spark, rtx = get_profile("cloud"), get_profile("dgx-spark"), get_profile("rtx4090-offload")
    assert cloud.e2e(878) == pytest.approx(5.11, abs=0.01)
    assert spark.e2e(878) == pytest.approx(21.83, abs=0.01)
    assert rtx.e2e(rtx.reply_tokens) == pytest.approx(93.89, abs=0.05)
    with pytest.raises(KeyError, match="dgx-spark"):
        get_profile("nope")


def test_offsets_are_increasing_and_bounded():
    p = get_profile("dgx-spark")
    offs = p.offsets(500, seed=7)
    assert offs[0] == p.ttft
    assert all(b > a for a, b in zip(offs, offs[1:]))
    for i, o in enumerate(offs):
        assert abs(o - (p.ttft + i / p.tps)) <= p.jitter / p.tps + 1e-12
    assert offs == p.offsets(500, seed=7) and offs != p.offsets(500, seed=8)


# --- OpenAI ----------------------------------------------------------------------------------


async def test_openai_stream_frames(client):
    body = {
        "model": "fast-local",
        "messages": MSGS,
        "stream": True,
        "stream_options": {"include_usage": True},
        "thunderdome_sim": {"reply": REPLY},
    }
    resp, raw = await post_raw(client, "/v1/chat/completions", body)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["transfer-encoding"] == "chunked"
    frames = sse_frames(raw)
    assert frames[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = [c for c in chunks[1:] if c["choices"]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == REPLY
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * (len(content) - 1) + ["stop"]
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(content) == len(tokenize(REPLY))
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + len(content)


async def test_openai_reasoning_and_fields(client):
    for field in ("reasoning_content", "reasoning"):
        body = {"model": "thinker", "messages": MSGS, "stream": True, "thunderdome_sim": {"reply": "ok", "reasoning_field": field}}
        _, raw = await post_raw(client, "/v1/chat/completions", body)
        chunks = [json.loads(d) for _, d in sse_frames(raw)[:-1]]
        deltas = [c["choices"][0]["delta"] for c in chunks[1:]]
        reasoning = [d[field] for d in deltas if field in d]
        assert len(reasoning) == 40 and all("content" not in d for d in deltas[:40])
        assert "".join(d.get("content", "") for d in deltas) == "ok"
        assert not any("usage" in c for c in chunks)  # include_usage not asked


async def test_openai_max_tokens_cuts_with_length(client):
    body = {"model": "instant", "messages": MSGS, "stream": True, "max_tokens": 4, "thunderdome_sim": {"reply": REPLY, "timings": True}}
    _, raw = await post_raw(client, "/v1/chat/completions", body)
    chunks = [json.loads(d) for _, d in sse_frames(raw)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "".join(tokenize(REPLY)[:4])
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["timings"]["predicted_n"] == 4 and last["timings"]["predicted_per_second"] > 0


async def test_openai_non_stream(client):
    body = {"model": "thinker", "messages": MSGS, "thunderdome_sim": {"reply": REPLY}}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    obj = resp.json()
    assert obj["object"] == "chat.completion"
    assert obj["choices"][0]["message"]["content"] == REPLY
    assert obj["choices"][0]["message"]["reasoning_content"]
    assert obj["usage"]["completion_tokens"] == 40 + len(tokenize(REPLY))


async def test_generated_default_reply_and_table(client):
    _, raw = await post_raw(client, "/v1/chat/completions", {"model": "instant", "messages": MSGS, "stream": True})
    chunks = [json.loads(d) for _, d in sse_frames(raw)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == generate_text(PROFILES["instant"].reply_tokens)
    msgs = [{"role": "user", "content": "please say the magic word now"}]
    resp = await client.post("/v1/chat/completions", json={"model": "instant", "messages": msgs})
    assert resp.json()["choices"][0]["message"]["content"] == "table reply text"


async def test_wrong_reply_is_seeded(client):
    async def answer(rate, seed):
        sim = {"reply": "right", "wrong_reply": "wrong", "wrong_rate": rate, "seed": seed}
        r = await client.post("/v1/chat/completions", json={"model": "instant", "messages": MSGS, "thunderdome_sim": sim})
        return r.json()["choices"][0]["message"]["content"]

    assert await answer(1.0, 1) == "wrong"
    assert await answer(0.0, 1) == "right"
    draws = [await answer(0.5, s) for s in range(20)]
    assert set(draws) == {"right", "wrong"}
    assert draws == [await answer(0.5, s) for s in range(20)]


# --- Ollama ----------------------------------------------------------------------------------


async def test_ollama_stream_lines(client):
    body = {"model": "thinker:latest", "messages": MSGS, "thunderdome_sim": {"reply": REPLY}}  # stream defaults to true
    resp, raw = await post_raw(client, "/api/chat", body)
    assert resp.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    parts, final = lines[:-1], lines[-1]
    assert all(p["done"] is False and p["model"] == "thinker:latest" for p in parts)
    assert "".join(p["message"]["content"] for p in parts) == REPLY
    assert sum(1 for p in parts if p["message"].get("thinking")) == 40
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == len(parts) == 40 + len(tokenize(REPLY))
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int)
    assert 0 < final["eval_duration"] < final["total_duration"]
    # reading the request + prompt evaluation = TTFT, which is never early
    assert final["load_duration"] + final["prompt_eval_duration"] >= PROFILES["thinker"].ttft * SCALE * 1e9 - 2


async def test_ollama_non_stream_and_num_predict(client):
    body = {"model": "instant", "messages": MSGS, "stream": False, "options": {"num_predict": 3}, "thunderdome_sim": {"reply": REPLY}}
    obj = (await client.post("/api/chat", json=body)).json()
    assert obj["done"] is True and obj["done_reason"] == "length"
    assert obj["message"]["content"] == "".join(tokenize(REPLY)[:3]) and obj["eval_count"] == 3


# --- Anthropic -------------------------------------------------------------------------------


async def test_anthropic_stream_events(client):
    body = {"model": "thinker", "max_tokens": 1000, "stream": True, "messages": MSGS, "thunderdome_sim": {"reply": REPLY}}
    resp, raw = await post_raw(client, "/v1/messages", body)
    assert resp.headers["content-type"] == "text/event-stream"
    frames = sse_frames(raw)
    for event, data in frames:
        assert json.loads(data)["type"] == event
    names = [e for e, _ in frames]
    n_answer = len(tokenize(REPLY))
    expected = (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * 41  # 40 thinking deltas + signature
        + ["content_block_stop", "content_block_start"]
        + ["content_block_delta"] * n_answer
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    assert names == expected
    objs = [json.loads(d) for _, d in frames]
    assert objs[0]["message"]["usage"]["output_tokens"] == 1 and objs[0]["message"]["usage"]["input_tokens"] > 0
    text = "".join(o["delta"]["text"] for o in objs if o["type"] == "content_block_delta" and o["delta"]["type"] == "text_delta")
    assert text == REPLY
    assert sum(1 for o in objs if o.get("delta", {}).get("type") == "thinking_delta") == 40
    assert objs[-2]["usage"]["output_tokens"] == 40 + n_answer
    assert objs[-2]["delta"]["stop_reason"] == "end_turn"


async def test_anthropic_non_stream(client):
    body = {"model": "instant", "max_tokens": 2, "messages": MSGS, "thunderdome_sim": {"reply": REPLY}}
    obj = (await client.post("/v1/messages", json=body)).json()
    assert obj["type"] == "message" and obj["stop_reason"] == "max_tokens"
    assert obj["content"] == [{"type": "text", "text": "".join(tokenize(REPLY)[:2])}]


# --- pacing and concurrency --------------------------------------------------------------------


async def test_pacing_is_never_early_and_roughly_on_time(emu, client):
    """100 tokens at fast-local (ttft 0.15, 120 tok/s) scaled by 0.2: ~0.195 s."""
    scale = 0.2
    body = {"model": "fast-local", "messages": MSGS, "stream": True, "thunderdome_sim": {"tokens": 100, "time_scale": scale}}
    start = time.monotonic()
    resp, _ = await post_raw(client, "/v1/chat/completions", body | {"stream": True})
    elapsed = time.monotonic() - start
    p = PROFILES["fast-local"]
    expected = scale * p.e2e(100)
    rec = emu.log[-1]
    assert rec["tokens"] == 100
    slack = scale * p.jitter / p.tps
    assert rec["t_head"] <= rec["t_received"] and rec["t_arrival"] <= rec["t_received"]
    assert rec["t_first_token"] - rec["t_arrival"] >= scale * p.ttft
    assert rec["t_last_token"] - rec["t_arrival"] >= expected - slack
    assert elapsed < 2 * expected + 0.5  # a sanity bound against hangs, not a precision test


async def test_sixteen_concurrent_streams(emu, client):
    async def one(i):
        body = {"model": "fast-local", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True}, "thunderdome_sim": {"tokens": 60, "seed": i}}
        _, raw = await post_raw(client, "/v1/chat/completions", body, headers={"x-thunderdome-tag": f"c{i}"})
        chunks = [json.loads(d) for _, d in sse_frames(raw)[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        return text, chunks[-1]["usage"]["completion_tokens"]

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(16))), 60)
    for i, (text, n) in enumerate(results):
        assert text == generate_text(60, seed=i) and n == 60
    tags = {r["id"] for r in emu.log}
    assert {f"c{i}" for i in range(16)} <= tags


# --- routes and errors -------------------------------------------------------------------------


async def test_discovery_routes(client):
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list" and {m["id"] for m in models["data"]} == set(PROFILES)
    tags = (await client.get("/api/tags")).json()
    assert {m["name"] for m in tags["models"]} == {f"{n}:latest" for n in PROFILES}
    assert (await client.get("/api/version")).json()["version"]
    assert (await client.get("/health")).json() == {"status": "ok"}


async def test_sim_log_records(client):
    body = {"model": "instant", "messages": MSGS, "stream": True, "thunderdome_sim": {"reply": "a b c"}}
    await post_raw(client, "/v1/chat/completions", body, headers={"x-thunderdome-tag": "lane-7"})
    recs = (await client.get("/sim/log", params={"id": "lane-7"})).json()
    assert len(recs) == 1
    rec = recs[0]
    assert rec["model"] == "instant" and rec["protocol"] == "openai" and rec["tokens"] == 3 and rec["fault"] is None
    assert rec["t_arrival"] <= rec["t_received"] <= rec["t_first_token"] <= rec["t_last_token"] <= time.monotonic()


async def test_errors_are_protocol_shaped(client):
    r = await client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["message"]
    bad = b"{not json"
    r = await client.post("/v1/chat/completions", content=bad)
    assert r.status_code == 400 and "message" in r.json()["error"]
    r = await client.post("/api/chat", content=bad)
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
    r = await client.post("/v1/messages", content=bad)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MSGS})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = await client.post("/api/chat", json={"model": "gpt-9", "messages": MSGS})
    assert r.status_code == 404 and "not found" in r.json()["error"]
    r = await client.post("/v1/messages", json={"model": "gpt-9", "max_tokens": 5, "messages": MSGS})
    assert r.status_code == 404 and r.json() == {"type": "error", "error": {"type": "not_found_error", "message": "model: gpt-9"}}
    r = await client.post("/v1/chat/completions", json={"model": "instant", "messages": MSGS, "thunderdome_sim": {"tokenz": 3}})
    assert r.status_code == 400 and "tokenz" in r.json()["error"]["message"]
    r = await client.get("/v1/chat/completions")
    assert r.status_code == 405


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/v1/messages"])
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "instant", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"model": "instant", "messages": [], "max_tokens": ' + b"9" * 5000 + b"}",
    ],
    ids=["deep-array", "deep-messages", "5000-digit-int"],
)
async def test_a_hostile_body_is_a_400_and_the_server_keeps_serving(client, path, body):
    r = await client.post(path, content=body)
    assert r.status_code == 400 and "malformed JSON body" in r.text
    r = await client.post("/v1/chat/completions", json={"model": "instant", "messages": MSGS, "stream": False})
    assert r.status_code == 200


async def test_raw_keep_alive_and_chunked_request_body(emu):
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        payload = json.dumps({"model": "instant", "messages": MSGS, "thunderdome_sim": {"reply": "one"}}).encode()
        half = len(payload) // 2
        chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, payload[:half], len(payload) - half, payload[half:])
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined on the same connection
        await writer.drain()
        for expect in (b'"content": "one"', b'{"status": "ok"}'):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: keep-alive" in head
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert expect in await reader.readexactly(length)
    finally:
        writer.close()


# --- launching ---------------------------------------------------------------------------------


def test_thread_emulator():
    with start_emulator_thread(time_scale=SCALE) as h:
        r = httpx2.post(f"{h.url}/api/chat", json={"model": "instant", "messages": MSGS, "stream": False, "thunderdome_sim": {"reply": "hi"}}, headers={"x-thunderdome-tag": "t1"})
        assert r.json()["message"]["content"] == "hi"
        assert [rec["id"] for rec in h.log] == ["t1"]
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{h.url}/health", timeout=2)
    h.stop()  # idempotent


def test_spawned_process_serves_and_stops():
    h = spawn_emulator_process(time_scale=SCALE, replies={"ping": "pong"})
    try:
        r = httpx2.post(f"{h.url}/v1/chat/completions", json={"model": "instant", "messages": [{"role": "user", "content": "ping?"}]}, headers={"x-thunderdome-tag": "p1"}, timeout=10)
        assert r.json()["choices"][0]["message"]["content"] == "pong"
        assert h.fetch_log("p1")[0]["tokens"] == 1
    finally:
        h.stop()
    assert h.proc.returncode is not None
    h.stop()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{h.url}/health", timeout=2)


def test_spawned_process_dies_with_its_parent(tmp_path: Path):
    script = (
        "import sys, time\n"
        "from thunderdome.sim import spawn_emulator_process\n"
        "h = spawn_emulator_process()\n"
        "print(h.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": root})
    try:
        child_pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    if still_running_after([child_pid], 10):
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail("the emulator child outlived its parent")


def test_serve_main_rejects_bad_usage(capsys):
    assert serve_main(["--port", "notaport"]) == 2
    assert serve_main(["--time-scale", "-1"]) == 2


async def test_client_leaving_mid_stream_ends_the_answer(emu):
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    body = json.dumps({"model": "dgx-spark", "messages": MSGS, "stream": True, "thunderdome_sim": {"time_scale": 1.0}}).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-thunderdome-tag: leaver\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 200")
    writer.close()
    deadline = time.monotonic() + 10
    while not emu.log[-1]["client_gone"]:
        assert time.monotonic() < deadline, "the server kept answering a client that left"
        await asyncio.sleep(0.02)
    assert emu.log[-1]["id"] == "leaver" and emu.log[-1]["tokens"] == 0


async def test_stop_drops_open_streams():
    server = EmulatorServer(time_scale=1.0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = json.dumps({"model": "rtx4090-offload", "messages": MSGS, "stream": True}).encode()
    writer.write(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    await asyncio.wait_for(server.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_http10_client_gets_an_unframed_stream(emu):
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    body = json.dumps({"model": "instant", "messages": MSGS, "thunderdome_sim": {"reply": "old school"}}).encode()
    writer.write(b"POST /api/chat HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # the server closes to end the body
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    lines = [json.loads(line) for line in payload.decode().splitlines()]
    assert "".join(p["message"]["content"] for p in lines[:-1]) == "old school" and lines[-1]["done"]


# --- task prompts (thunderdome sim serve) --------------------------------------------------


def test_task_replies_fill_the_reference_from_the_prompt():
    from thunderdome.sim.task_replies import TaskReplies

    replies = TaskReplies([("I am {pid}; kill {opponents} ({pid} stays).", "kill -9 {opponents} # {unknown}")])
    assert replies.answer("I am 7; kill 8 9 (7 stays).\n") == "kill -9 8 9 # {unknown}"
    assert replies.answer("I am 7; kill 8 9 (6 stays).") is None  # a field used twice must agree
    assert replies.answer("Say hello") is None


async def test_sim_serve_answers_a_task_prompt_with_its_reference_in_every_protocol():
    """Lanes of any kind play Thunderdome tasks on ``sim serve``: the sigkill
    prompt, as the race renders it, gets ``kill -9`` of the PIDs it names."""
    from thunderdome.race.engine import render_prompt
    from thunderdome.race.tasks import builtin_tasks, load_task
    from thunderdome.sim.task_replies import TaskReplies

    task = load_task("sigkill")
    prompt = render_prompt(task.user, {"pid": 4242, "opponents": "4243 4244"})
    server = EmulatorServer(time_scale=SCALE, task_replies=TaskReplies(
        (t.user, t.reference) for t in builtin_tasks() if t.reference))
    await server.start()
    try:
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as c:
            msgs = [{"role": "user", "content": prompt}]
            openai = (await c.post("/v1/chat/completions", json={"model": "cloud", "messages": msgs})).json()
            ollama = (await c.post("/api/chat", json={"model": "dgx-spark", "messages": msgs, "stream": False})).json()
            anthropic = (await c.post("/v1/messages", json={"model": "cloud", "messages": msgs,
                                                            "max_tokens": 64})).json()
            other = (await c.post("/v1/chat/completions", json={"model": "cloud", "messages": MSGS})).json()
    finally:
        await server.stop()
    expected = "```bash\nkill -9 4243 4244\n```"
    assert openai["choices"][0]["message"]["content"] == expected
    assert ollama["message"]["content"] == expected
    assert anthropic["content"][0]["text"] == expected
    assert "kill -9" not in other["choices"][0]["message"]["content"]  # other prompts: generated text
