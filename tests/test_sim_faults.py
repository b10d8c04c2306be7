"""Each emulator fault and quirk produces its documented wire behaviour (raw bytes)."""

from __future__ import annotations

import asyncio
import json

import pytest

from thunderdome.sim import FAULTS, QUIRKS, EmulatorServer, tokenize

SCALE = 0.02
REPLY = "Fault line — naïve café tokens, one two three four five six seven eight."
N = len(tokenize(REPLY))
MSGS = [{"role": "user", "content": "go"}]
PATHS = {"openai": "/v1/chat/completions", "ollama": "/api/chat", "anthropic": "/v1/messages"}


@pytest.fixture
async def emu():
    async with EmulatorServer(time_scale=SCALE) as server:
        yield server


class Raw:
    """A bare HTTP/1.1 client: one request, then the response read piece by piece."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    async def post(cls, port: int, protocol: str, sim: dict, read_head: bool = True, **extra) -> Raw:
        body = {"model": "fast-local", "messages": MSGS, "stream": True, "max_tokens": 500, **extra}
        body["thunderdome_sim"] = {"reply": REPLY, **sim}
        payload = json.dumps(body).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST {PATHS[protocol]} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        raw = cls(reader, writer)
        if not read_head:
            return raw
        head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head_bytes.decode("latin-1").split("\r\n")
        raw.status = int(lines[0].split()[1])
        raw.headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
        return raw

    async def chunk(self, timeout: float = 10) -> bytes | None:
        """The next chunk's payload; b'' for the terminating chunk; None at EOF."""
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)
        except asyncio.IncompleteReadError:
            return None
        size = int(line.strip(), 16)
        data = await self.reader.readexactly(size + 2)
        assert data.endswith(b"\r\n")
        return data[:-2]

    async def chunks(self, timeout: float = 10) -> tuple[list[bytes], bool]:
        """All chunk payloads until the end; ended=True only for a proper zero chunk."""
        out = []
        while True:
            c = await self.chunk(timeout)
            if c is None:
                return out, False
            if c == b"":
                return out, True
            out.append(c)

    async def body(self) -> bytes:
        return await self.reader.readexactly(int(self.headers["content-length"]))

    def close(self) -> None:
        self.writer.close()


def openai_frames(body: bytes) -> list[str]:
    return [f[6:] for f in body.decode().split("\n\n") if f]


def contents(frames: list[str]) -> str:
    out = ""
    for f in frames:
        if f != "[DONE]":
            for choice in json.loads(f).get("choices") or []:
                out += choice["delta"].get("content", "")
    return out


# --- catalogue -----------------------------------------------------------------------------


async def test_unknown_or_double_fault_is_a_400(emu):
    for fault in ("boom", "drop_mid,cut"):
        raw = await Raw.post(emu.port, "openai", {"fault": fault})
        assert raw.status == 400 and "fault" in json.loads(await raw.body())["error"]["message"]
        raw.close()
    assert "drop_mid" in FAULTS and "trickle" in QUIRKS


# --- HTTP-level faults ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PATHS)
@pytest.mark.parametrize("code", [401, 404, 429, 500, 503])
async def test_http_error_faults(emu, protocol, code):
    raw = await Raw.post(emu.port, protocol, {"fault": f"http_{code}"})
    body = json.loads(await raw.body())
    raw.close()
    assert raw.status == code and raw.headers["content-type"] == "application/json"
    assert (raw.headers.get("retry-after") == "20") == (code == 429)
    if protocol == "openai":
        assert body["error"]["message"] and body["error"]["type"]
    elif protocol == "ollama":
        assert isinstance(body["error"], str)
    else:
        assert body["type"] == "error" and body["error"]["type"].endswith("_error")
    assert emu.log[-1]["status"] == code and emu.log[-1]["fault"] == f"http_{code}"


async def test_html_200(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "html_200"})
    assert raw.status == 200 and raw.headers["content-type"].startswith("text/html")
    assert (await raw.body()).startswith(b"<!DOCTYPE html>")
    raw.close()


# --- mid-stream faults ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PATHS)
async def test_drop_mid_aborts_without_terminating_chunk(emu, protocol):
    raw = await Raw.post(emu.port, protocol, {"fault": "drop_mid", "fault_at": 3})
    chunks, ended = await raw.chunks()
    raw.close()
    assert not ended
    body = b"".join(chunks)
    assert emu.log[-1]["tokens"] == 3 and emu.log[-1]["finish_reason"] is None
    if protocol == "openai":
        assert b"[DONE]" not in body and contents(openai_frames(body)) == "".join(tokenize(REPLY)[:3])
    elif protocol == "ollama":
        assert b'"done":true' not in body
    else:
        assert b"message_stop" not in body


async def test_stall_before_sends_headers_then_nothing(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "stall_before"})  # 3600 s * 0.02 = 72 s
    assert raw.status == 200 and raw.headers["transfer-encoding"] == "chunked"
    with pytest.raises(asyncio.TimeoutError):
        await raw.chunk(timeout=0.4)
    raw.close()


async def test_stall_resumes_shifted(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "stall_before", "stall_s": 5})  # 0.1 s scaled
    chunks, ended = await raw.chunks()
    raw.close()
    assert ended and contents(openai_frames(b"".join(chunks))) == REPLY
    rec = emu.log[-1]
    assert rec["t_first_token"] - rec["t_arrival"] >= SCALE * (5 + 0.15)


async def test_stall_after_goes_silent_after_fault_at_tokens(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "stall_after", "fault_at": 4})
    got = [await raw.chunk() for _ in range(5)]  # role chunk + 4 tokens
    assert contents([c.decode()[6:].strip() for c in got]) == "".join(tokenize(REPLY)[:4])
    with pytest.raises(asyncio.TimeoutError):
        await raw.chunk(timeout=0.4)
    raw.close()
    assert emu.log[-1]["tokens"] == 4


@pytest.mark.parametrize("protocol", PATHS)
async def test_bad_json_frame_then_normal_end(emu, protocol):
    raw = await Raw.post(emu.port, protocol, {"fault": "bad_json", "fault_at": 2})
    chunks, ended = await raw.chunks()
    raw.close()
    assert ended
    body = b"".join(chunks).decode()
    if protocol == "ollama":
        records = [line for line in body.split("\n") if line]
    else:
        records = [f.split("data: ", 1)[1] for f in body.split("\n\n") if f]
    bad = []
    for rec in records:
        if rec == "[DONE]":
            continue
        try:
            json.loads(rec)
        except ValueError:
            bad.append(rec)
    assert len(bad) == 1 and "oops" in bad[0]
    assert records.index(bad[0]) == {"openai": 3, "ollama": 2, "anthropic": 5}[protocol]  # after 2 tokens
    if protocol == "openai":
        assert contents([r for r in records if r != bad[0]]) == REPLY and records[-1] == "[DONE]"


@pytest.mark.parametrize("protocol", PATHS)
async def test_bad_utf8_frame(emu, protocol):
    raw = await Raw.post(emu.port, protocol, {"fault": "bad_utf8", "fault_at": 1})
    chunks, ended = await raw.chunks()
    raw.close()
    assert ended
    body = b"".join(chunks)
    assert b"\xff\xfe" in body
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    good = body.replace(b"\xff\xfe\xc3", b"")
    good.decode("utf-8")  # everything else is valid


@pytest.mark.parametrize("protocol", PATHS)
async def test_huge_line_never_ends(emu, protocol):
    raw = await Raw.post(emu.port, protocol, {"fault": "huge_line", "fault_at": 1})
    got = b""
    while len(got) < 8 * 1024 * 1024 + 4096:
        c = await raw.chunk()
        assert c  # neither EOF nor a terminating chunk
        got += c
    raw.close()
    tail = got.split(b"x" * 64, 1)
    assert len(tail) == 2
    assert b"\n" not in tail[1]  # after the line starts: 8 MB with no newline
    prefix = tail[0]
    if protocol == "openai":
        assert prefix.rsplit(b"\n\n", 1)[1].startswith(b'data: {"id"')
    elif protocol == "ollama":
        assert prefix.rsplit(b"\n", 1)[1].startswith(b'{"model"')
    else:
        assert prefix.rsplit(b"\n\n", 1)[1].startswith(b"event: content_block_delta\ndata: ")


@pytest.mark.parametrize("protocol", PATHS)
async def test_error_frame_with_http_200(emu, protocol):
    raw = await Raw.post(emu.port, protocol, {"fault": "error_frame", "fault_at": 2})
    chunks, ended = await raw.chunks()
    raw.close()
    assert raw.status == 200 and ended
    body = b"".join(chunks).decode()
    if protocol == "openai":
        frames = openai_frames(body.encode())
        assert frames[-1] == "[DONE]"
        err = json.loads(frames[-2])["error"]
        assert err["message"] and err["type"]
        assert contents(frames[:-2]) == "".join(tokenize(REPLY)[:2])
        assert all(json.loads(f).get("choices", [{}])[0].get("finish_reason") is None for f in frames[:-2])
    elif protocol == "ollama":
        last = json.loads(body.splitlines()[-1])
        assert set(last) == {"error"} and isinstance(last["error"], str)
    else:
        assert body.endswith("\n\n")
        last = body.strip().split("\n\n")[-1]
        event, data = last.split("\n")
        assert event == "event: error"
        assert json.loads(data[6:]) == {"type": "error", "error": {"type": "overloaded_error", "message": json.loads(data[6:])["error"]["message"]}}
        assert "message_stop" not in body


@pytest.mark.parametrize("protocol", PATHS)
async def test_no_end_closes_body_without_terminator(emu, protocol):
    raw = await Raw.post(emu.port, protocol, {"fault": "no_end", "fault_at": 3})
    chunks, ended = await raw.chunks()
    raw.close()
    assert ended  # the chunked body itself ends properly
    body = b"".join(chunks)
    for marker in (b"[DONE]", b'"done":true', b"message_stop", b"finish_reason\":\"", b"message_delta"):
        assert marker not in body
    assert emu.log[-1]["tokens"] == 3


async def test_cut_is_role_chunk_then_done(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "cut"}, stream_options={"include_usage": True})
    chunks, ended = await raw.chunks()
    raw.close()
    frames = openai_frames(b"".join(chunks))
    assert ended and len(frames) == 2 and frames[1] == "[DONE]"
    first = json.loads(frames[0])["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""} and first["finish_reason"] is None


async def test_cut_in_ollama_and_anthropic(emu):
    raw = await Raw.post(emu.port, "ollama", {"fault": "cut", "fault_at": 2})
    chunks, _ = await raw.chunks()
    raw.close()
    last = json.loads(b"".join(chunks).decode().splitlines()[-1])
    assert last["done"] is True and "done_reason" not in last
    raw = await Raw.post(emu.port, "anthropic", {"fault": "cut", "fault_at": 2})
    chunks, _ = await raw.chunks()
    raw.close()
    body = b"".join(chunks).decode()
    assert body.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n') and "message_delta" not in body


# --- quirks -------------------------------------------------------------------------------


async def test_split_utf8_splits_inside_a_character(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "split_utf8"})
    chunks, ended = await raw.chunks()
    raw.close()
    assert ended
    broken = []
    for c in chunks:
        try:
            c.decode("utf-8")
        except UnicodeDecodeError:
            broken.append(c)
    assert len(broken) >= 2 * 3  # "—", "ï", "é": each frame split in two undecodable halves
    assert contents(openai_frames(b"".join(chunks))) == REPLY


async def test_trickle_writes_one_byte_at_a_time(emu):
    reader_sizes: list[int] = []
    raw = await Raw.post(emu.port, "ollama", {"fault": "trickle", "reply": "tiny reply"})
    body = b""
    while not body.endswith(b"0\r\n\r\n"):
        piece = await asyncio.wait_for(raw.reader.read(65536), 10)
        assert piece
        reader_sizes.append(len(piece))
        body += piece
    raw.close()
    assert len(body) > 300
    assert len(reader_sizes) > len(body) // 4  # many tiny reads, not a few frames
    lines = [json.loads(line) for line in _dechunk(body).decode().splitlines()]
    assert "".join(p["message"]["content"] for p in lines[:-1]) == "tiny reply" and lines[-1]["done"]


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


async def test_keepalive_frames_between_tokens(emu):
    for protocol, marker in (("openai", b": keep-alive\n\n"), ("anthropic", b"event: ping\n"), ("ollama", b"\n\n")):
        raw = await Raw.post(emu.port, protocol, {"fault": "keepalive"})
        chunks, ended = await raw.chunks()
        raw.close()
        assert ended
        body = b"".join(chunks)
        assert body.count(marker) >= N
        if protocol == "openai":
            assert contents([f for f in openai_frames(body.replace(marker, b"")) if f]) == REPLY


async def test_no_usage_and_choices_null(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "no_usage"}, stream_options={"include_usage": True})
    chunks, _ = await raw.chunks()
    raw.close()
    assert b'"usage"' not in b"".join(chunks)
    raw = await Raw.post(emu.port, "ollama", {"fault": "no_usage"})
    chunks, _ = await raw.chunks()
    raw.close()
    last = json.loads(b"".join(chunks).decode().splitlines()[-1])
    assert last["done"] is True and "eval_count" not in last
    raw = await Raw.post(emu.port, "openai", {"fault": "choices_null"}, stream_options={"include_usage": True})
    chunks, _ = await raw.chunks()
    raw.close()
    frames = openai_frames(b"".join(chunks))
    usage = json.loads(frames[-2])
    assert usage["choices"] is None and usage["usage"]["completion_tokens"] == N


async def test_quirks_combine_with_a_fault(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": ["keepalive", "split_utf8", "drop_mid"], "fault_at": 4})
    chunks, ended = await raw.chunks()
    raw.close()
    assert not ended and b": keep-alive" in b"".join(chunks)
    assert emu.log[-1]["fault"] == "drop_mid,keepalive,split_utf8"


async def test_non_stream_faults(emu):
    raw = await Raw.post(emu.port, "openai", {"fault": "drop_mid"}, read_head=False, stream=False)
    assert await asyncio.wait_for(raw.reader.read(), 10) == b""  # dropped before any response
    raw.close()
    raw = await Raw.post(emu.port, "anthropic", {"fault": "bad_json"}, stream=False)
    assert raw.status == 200
    with pytest.raises(ValueError):
        json.loads(await raw.body())
    raw.close()
