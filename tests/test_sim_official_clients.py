"""The official openai, anthropic and ollama packages stream from the emulator unchanged."""

from __future__ import annotations

import json

import anthropic
import ollama
import openai
import pytest

from thunderdome.sim import EmulatorServer, start_emulator_thread, tokenize

SCALE = 0.02
REPLY = "Sure — run `kill -9 4242` and the fight is over. ✅"
MSGS = [{"role": "user", "content": "Finish the fight"}]
SIM = {"thunderdome_sim": {"reply": REPLY}}


@pytest.fixture
async def emu():
    server = EmulatorServer(time_scale=SCALE)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def emu_thread():
    """For the synchronous clients: the emulator on its own loop and thread."""
    with start_emulator_thread(time_scale=SCALE) as handle:
        yield handle


# --- openai --------------------------------------------------------------------------------


async def test_openai_async_stream_with_usage_and_reasoning(emu):
    client = openai.AsyncOpenAI(base_url=f"{emu.url}/v1", api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model="thinker",
        messages=MSGS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=SIM,
    )
    text, reasoning, usage, finish, chunks = "", "", None, None, 0
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices:
            delta = chunk.choices[0].delta
            text += delta.content or ""
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            finish = chunk.choices[0].finish_reason or finish
            chunks += 1
    await client.close()
    assert text == REPLY
    assert len(tokenize(reasoning)) == 40
    assert finish == "stop"
    assert usage.completion_tokens == 40 + len(tokenize(REPLY)) == chunks - 1  # minus the role chunk
    assert usage.completion_tokens_details.reasoning_tokens == 40


def test_openai_sync_non_stream_and_errors(emu_thread):
    client = openai.OpenAI(base_url=f"{emu_thread.url}/v1", api_key="x", max_retries=0)
    done = client.chat.completions.create(model="fast-local", messages=MSGS, extra_body=SIM)
    assert done.choices[0].message.content == REPLY
    assert done.usage.completion_tokens == len(tokenize(REPLY))
    assert {m.id for m in client.models.list()} >= {"cloud", "dgx-spark", "rtx4090-offload"}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=MSGS)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="cloud", messages=MSGS, stream=True, extra_body={"thunderdome_sim": {"fault": "http_429"}})
    assert info.value.response.headers["retry-after"] == "20"


def test_openai_sync_stream_with_max_tokens(emu_thread):
    client = openai.OpenAI(base_url=f"{emu_thread.url}/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="instant", messages=MSGS, stream=True, max_tokens=5, extra_body=SIM)
    pieces = [(c.choices[0].delta.content or "", c.choices[0].finish_reason) for c in stream if c.choices]
    assert "".join(p for p, _ in pieces) == "".join(tokenize(REPLY)[:5])
    assert pieces[-1][1] == "length"


# --- anthropic -------------------------------------------------------------------------------


async def test_anthropic_async_stream_helper_with_thinking(emu):
    client = anthropic.AsyncAnthropic(base_url=emu.url, api_key="x", max_retries=0)
    async with client.messages.stream(model="thinker", max_tokens=1000, messages=MSGS, extra_body=SIM) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    await client.close()
    assert text == REPLY
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text"]
    assert len(tokenize(final.content[0].thinking)) == 40
    assert final.content[1].text == REPLY
    assert final.usage.output_tokens == 40 + len(tokenize(REPLY))
    assert final.usage.input_tokens > 0
    assert final.stop_reason == "end_turn"


def test_anthropic_sync_create_stream_events(emu_thread):
    client = anthropic.Anthropic(base_url=emu_thread.url, api_key="x", max_retries=0)
    events = list(client.messages.create(model="cloud", max_tokens=3, messages=MSGS, stream=True, extra_body=SIM))
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "".join(tokenize(REPLY)[:3])
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "max_tokens" and delta.usage.output_tokens == 3
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope", max_tokens=3, messages=MSGS)


def test_anthropic_mid_stream_error_is_raised(emu_thread):
    client = anthropic.Anthropic(base_url=emu_thread.url, api_key="x", max_retries=0)
    sim = {"thunderdome_sim": {"reply": REPLY, "fault": "error_frame", "fault_at": 2}}
    with pytest.raises(anthropic.APIStatusError, match="overloaded"):
        with client.messages.stream(model="instant", max_tokens=100, messages=MSGS, extra_body=sim) as stream:
            for _ in stream:
                pass


# --- ollama ----------------------------------------------------------------------------------


async def test_ollama_async_stream_with_thinking(emu):
    client = ollama.AsyncClient(host=emu.url)
    text, thinking, last = "", "", None
    async for part in await client.chat(model="thinker", messages=MSGS, stream=True, options={"thunderdome_sim": {"reply": REPLY}}):
        text += part.message.content or ""
        thinking += part.message.thinking or ""
        last = part
    assert text == REPLY
    assert len(tokenize(thinking)) == 40
    assert last.done and last.done_reason == "stop"
    assert last.eval_count == 40 + len(tokenize(REPLY))
    assert 0 < last.eval_duration < last.total_duration


def test_ollama_sync_stream_list_and_errors(emu_thread):
    client = ollama.Client(host=emu_thread.url, headers={"x-thunderdome-sim": json.dumps({"reply": REPLY})})
    parts = list(client.chat(model="dgx-spark:latest", messages=MSGS, stream=True, options={"temperature": 0}))
    assert "".join(p.message.content for p in parts) == REPLY
    assert parts[-1].eval_count == len(tokenize(REPLY))
    whole = client.chat(model="cloud", messages=MSGS)
    assert whole.message.content == REPLY and whole.done
    assert "dgx-spark:latest" in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="llama-nope", messages=MSGS)
    assert info.value.status_code == 404
