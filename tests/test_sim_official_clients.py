"""The official openai, anthropic and ollama packages stream from the emulator unchanged:
text, reasoning, native tool calls and their closing turn, and the OpenAI Responses API."""

from __future__ import annotations

import json

import anthropic
import ollama
import openai
import pytest

from thunderdome.sim import EmulatorServer, start_emulator_thread, tokenize
from thunderdome.sim.tools import CLOSING_TEXT

SCALE = 0.02
REPLY = "Sure — run `kill -9 4242` and the fight is over. ✅"
MSGS = [{"role": "user", "content": "Finish the fight"}]
SIM = {"thunderdome_sim": {"reply": REPLY}}


@pytest.fixture
async def emu():
    async with EmulatorServer(time_scale=SCALE) as server:
        yield server


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


# --- tool calls and the Responses API ---------------------------------------------------------

COMMAND = "kill -9 4242"
REFERENCE = f"```bash\n{COMMAND}\n```"
TOOL_SIM = {"thunderdome_sim": {"reply": REFERENCE}}
BASH_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "bash", "description": "Run a command", "parameters": BASH_SCHEMA}}]


async def test_openai_chat_stream_with_tools_then_the_closing_turn(emu):
    client = openai.AsyncOpenAI(base_url=f"{emu.url}/v1", api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model="thinker",
        messages=MSGS,
        tools=CHAT_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=TOOL_SIM,
    )
    calls: dict[int, dict] = {}
    finish, usage = None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls" and list(calls) == [0]
    call = calls[0]
    assert call["name"] == "bash" and json.loads(call["arguments"]) == {"command": COMMAND}
    assert usage.completion_tokens == 40 + len(tokenize(call["arguments"]))
    followup = MSGS + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call["id"], "type": "function", "function": {"name": "bash", "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "killed"},
    ]
    done = await client.chat.completions.create(model="instant", messages=followup, tools=CHAT_TOOLS, extra_body=TOOL_SIM)
    await client.close()
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.content == CLOSING_TEXT
    assert not done.choices[0].message.tool_calls


async def test_openai_responses_stream_with_a_function_tool_then_its_output(emu):
    client = openai.AsyncOpenAI(base_url=f"{emu.url}/v1", api_key="x", max_retries=0)
    tools = [{"type": "function", "name": "shell", "parameters": BASH_SCHEMA, "strict": False}]
    async with client.responses.stream(
        model="thinker", input="Finish the fight", tools=tools, instructions="Be terse.", extra_body=TOOL_SIM
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds and "response.reasoning_text.delta" in kinds
    call = final.output[-1]
    assert call.type == "function_call" and call.name == "shell"
    assert json.loads(call.arguments) == {"command": COMMAND}
    assert final.usage.output_tokens == 40 + len(tokenize(call.arguments))
    assert final.usage.output_tokens_details.reasoning_tokens == 40
    history = [
        {"role": "user", "content": [{"type": "input_text", "text": "Finish the fight"}]},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "killed"},
    ]
    async with client.responses.stream(model="instant", input=history, tools=tools, extra_body=TOOL_SIM) as stream:
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        closing = await stream.get_final_response()
    assert text == CLOSING_TEXT == closing.output_text and closing.status == "completed"
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model="cloud", input="x", extra_body={"thunderdome_sim": {"fault": "http_429"}})
    await client.close()


def test_openai_responses_text_with_max_output_tokens(emu_thread):
    client = openai.OpenAI(base_url=f"{emu_thread.url}/v1", api_key="x", max_retries=0)
    with client.responses.stream(model="fast-local", input="hi", max_output_tokens=4, extra_body=SIM) as stream:
        events = list(stream)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(tokenize(REPLY)[:4])
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    whole = client.responses.create(model="fast-local", input="hi", extra_body=SIM)
    assert whole.output_text == REPLY and whole.usage.output_tokens == len(tokenize(REPLY))


async def test_anthropic_stream_with_tools_then_the_tool_result(emu):
    client = anthropic.AsyncAnthropic(base_url=emu.url, api_key="x", max_retries=0)
    tools = [{"name": "bash", "description": "Run a command", "input_schema": BASH_SCHEMA}]
    async with client.messages.stream(model="thinker", max_tokens=1000, messages=MSGS, tools=tools, extra_body=TOOL_SIM) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"] and final.stop_reason == "tool_use"
    use = final.content[1]
    assert use.name == "bash" and use.input == {"command": COMMAND}
    assert final.usage.output_tokens == 40 + len(tokenize(json.dumps(use.input)))
    followup = MSGS + [
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "killed"}]},
    ]
    async with client.messages.stream(model="instant", max_tokens=1000, messages=followup, tools=tools, extra_body=TOOL_SIM) as stream:
        text = "".join([t async for t in stream.text_stream])
        closing = await stream.get_final_message()
    await client.close()
    assert text == CLOSING_TEXT == closing.content[-1].text and closing.stop_reason == "end_turn"


async def test_ollama_chat_with_tools_then_the_tool_message(emu):
    client = ollama.AsyncClient(host=emu.url)
    opts = {"thunderdome_sim": {"reply": REFERENCE}}
    parts = [p async for p in await client.chat(model="instant", messages=MSGS, tools=CHAT_TOOLS, stream=True, options=opts)]
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "bash"
    assert dict(calls[0].function.arguments) == {"command": COMMAND}
    assert parts[-1].done and parts[-1].done_reason == "stop"
    followup = MSGS + [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "bash", "arguments": {"command": COMMAND}}}]},
        {"role": "tool", "content": "killed"},
    ]
    closing = await client.chat(model="instant", messages=followup, tools=CHAT_TOOLS, options=opts)
    assert closing.message.content == CLOSING_TEXT and not closing.message.tool_calls
    assert closing.done_reason == "stop"
