"""Pure framing tests: SSE and NDJSON over hand-made byte streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from thunderdome.backends.sse import (
    MAX_LINE,
    FrameError,
    LineSplitter,
    NDJSONDecoder,
    SSEDecoder,
    parse_json_frame,
)

STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"text": "h\xc3\xa9llo \xf0\x9f\x98\x80"}\r\n\r\n'
    b"event: custom\r\n"
    b"id: 7\r\n"
    b"data:first\r\n"
    b"data:  second\r\n\r\n"
    b"data: [DONE]\r\n\r\n"
)
EXPECTED = [
    ("message", '{"text": "héllo 😀"}'),
    ("custom", "first\n second"),
    ("message", "[DONE]"),
]


def timed(decoder: SSEDecoder | NDJSONDecoder, chunks: list[bytes]) -> list[tuple[float, Any]]:
    """Each frame with the time the stream loop stamps on it: that of the chunk
    whose ``split`` returned it (chunk i arrives at t == i; the end of the
    stream, ``close_split``, at len(chunks)). Raises the first FrameError."""
    out: list[tuple[float, Any]] = []
    for t, chunk in enumerate([*chunks, None]):
        frames, error = decoder.close_split() if chunk is None else decoder.split(chunk)
        out.extend((float(t), frame) for frame in frames)
        if error is not None:
            raise error
    return out


def sse_all(chunks: list[bytes]) -> list[tuple[str, str]]:
    return [frame for _, frame in timed(SSEDecoder(), chunks)]


def split_lines(lines: LineSplitter, data: bytes) -> list[str]:
    got, error = lines.split(data)
    if error is not None:
        raise error
    return list(got)


def test_whole_stream_in_one_chunk() -> None:
    events = timed(SSEDecoder(), [STREAM])
    assert [frame for _, frame in events] == EXPECTED
    assert all(t == 0.0 for t, _ in events)


@pytest.mark.parametrize("variant", ["crlf", "lf", "cr"])
def test_split_at_every_position_gives_the_same_frames(variant: str) -> None:
    stream = {"crlf": STREAM, "lf": STREAM.replace(b"\r\n", b"\n"), "cr": STREAM.replace(b"\r\n", b"\r")}[variant]
    for cut in range(1, len(stream)):
        assert sse_all([stream[:cut], stream[cut:]]) == EXPECTED, cut


def test_every_frame_carries_the_time_of_the_chunk_that_completed_it() -> None:
    events = timed(SSEDecoder(), [STREAM[i : i + 1] for i in range(len(STREAM))])
    assert [frame for _, frame in events] == EXPECTED
    blanks = [i for i in range(len(STREAM)) if STREAM.startswith(b"\r\n\r\n", i)]
    # a frame completes on the "\r" of its blank line (a lone CR already ends a line);
    # the first blank line ends the keep-alive comment, which dispatches nothing
    assert [t for t, _ in events] == [float(i + 2) for i in blanks[1:]]


def test_multibyte_character_split_across_chunks() -> None:
    frame = "data: 日本語 😀\n\n".encode()
    for cut in range(1, len(frame)):
        assert sse_all([frame[:cut], frame[cut:]]) == [("message", "日本語 😀")]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    lines = LineSplitter()
    assert split_lines(lines, b"a\r") == ["a"]
    assert split_lines(lines, b"\nb\r") == ["b"]
    assert split_lines(lines, b"\r\n") == [""]
    assert split_lines(lines, b"c\n") == ["c"]


def test_comments_only_and_blank_lines_dispatch_nothing() -> None:
    assert sse_all([b": ping\n\n\n\n: ping\r\n\r\n"]) == []


def test_pending_event_at_end_of_stream_is_dispatched() -> None:
    assert timed(SSEDecoder(), [b"data: [DONE]"]) == [(1.0, ("message", "[DONE]"))]


def test_line_without_newline_over_1_mib_raises() -> None:
    lines = LineSplitter()
    assert split_lines(lines, b"data: " + b"x" * (MAX_LINE - 6)) == []  # exactly 1 MiB so far: fine
    with pytest.raises(FrameError, match=r"^frame larger than 1 MiB$"):
        split_lines(lines, b"x")


def test_complete_line_over_1_mib_raises_but_1_mib_is_fine() -> None:
    assert split_lines(LineSplitter(), b"y" * MAX_LINE + b"\n") == ["y" * MAX_LINE]
    with pytest.raises(FrameError, match="frame larger than 1 MiB"):
        split_lines(LineSplitter(), b"y" * (MAX_LINE + 1) + b"\n")


def test_trickle_of_a_long_line_stays_linear() -> None:
    # 200 KB one byte at a time: each split only scans the new byte
    lines = LineSplitter()
    for _ in range(200_000):
        assert not split_lines(lines, b"z")
    assert split_lines(lines, b"\n") == ["z" * 200_000]


def test_ndjson_skips_blank_lines_and_flushes_the_last_line() -> None:
    body = b'{"a": 1}\n\n  \r\n{"b": "\xc3\xa9"}\n{"c": 3}'
    for cut in range(1, len(body)):
        out = timed(NDJSONDecoder(), [body[:cut], body[cut:]])
        assert [json.loads(text) for _, text in out] == [{"a": 1}, {"b": "é"}, {"c": 3}]
        assert out[-1][0] == 2.0  # the last line was completed by the end of the stream


def test_ndjson_time_is_that_of_the_completing_chunk() -> None:
    assert timed(NDJSONDecoder(), [b'{"a"', b': 1}\n{"b": 2}\n']) == [(1.0, '{"a": 1}'), (1.0, '{"b": 2}')]


def test_malformed_json_reason_is_one_truncated_line() -> None:
    with pytest.raises(FrameError) as info:
        parse_json_frame('{"choices": [\n' + "x" * 500)
    reason = info.value.reason
    assert reason.startswith('malformed JSON frame: {"choices": [ xxx')
    assert "\n" not in reason and len(reason) < 120


def _loaded_http_clients(imports: str) -> str:
    """Which of httpx / httpx2 a fresh interpreter has loaded after ``imports``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    code = f"import sys, {imports}; print(sorted(m for m in ('httpx', 'httpx2') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_package_does_not_load_httpx() -> None:
    assert _loaded_http_clients("thunderdome.backends, thunderdome.backends.sse, thunderdome.backends.base") == "[]"


def test_the_clients_and_discovery_run_on_httpx2_not_httpx() -> None:
    imports = "thunderdome.backends.openai, thunderdome.backends.ollama, thunderdome.backends.anthropic, thunderdome.core.discover"
    assert _loaded_http_clients(imports) == "['httpx2']"


# --- the batch API the streaming loop uses ------------------------------------------------


def test_split_returns_the_lines_before_a_bad_one_with_the_error() -> None:
    lines, error = LineSplitter().split(b"a\nb\n\xff\nc\n")
    assert list(lines) == ["a", "b"]
    assert isinstance(error, FrameError) and error.reason == "invalid UTF-8 in stream"
    frames, error = SSEDecoder().split(b"data: 1\n\ndata: 2\n\ndata: \xfe\n\n")
    assert frames == [("message", "1"), ("message", "2")]
    assert isinstance(error, FrameError) and error.reason == "invalid UTF-8 in stream"


@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\n\r\n",  # every kind of line end in one chunk
        b"data: a\r\n\r\ndata: b\r\n\r\ndata: c\r\n\r\ndata: d\r\n\r\n",  # CRLF only
        b"data: a\n\ndata: b\n\ndata: c\n\ndata: d\n\n",  # LF only
    ],
)
def test_line_ends_give_the_same_frames_whole_split_or_byte_by_byte(stream: bytes) -> None:
    want = [("message", x) for x in "abcd"]
    assert SSEDecoder().split(stream)[0] == want
    for cut in range(1, len(stream)):
        assert sse_all([stream[:cut], stream[cut:]]) == want, cut
    assert sse_all([stream[i : i + 1] for i in range(len(stream))]) == want


def test_crlf_chunks_carry_a_partial_line_across_chunks() -> None:
    dec = SSEDecoder()
    assert dec.split(b"data: par")[0] == []
    assert dec.split(b"tial\r\n")[0] == []
    assert dec.split(b"\r\ndata: next\r\n\r\n")[0] == [("message", "partial"), ("message", "next")]


def test_ndjson_split_skips_blank_lines() -> None:
    lines, error = NDJSONDecoder().split(b'{"a": 1}\n \t\n\n{"b": 2}\n{"c"')
    assert lines == ['{"a": 1}', '{"b": 2}'] and error is None


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, null, true]}', '  {"a": 1}  ', '{"a": 1}\n', "NaN", '"s"', "[]", "\ufeff{}", '{"a": 1} x', "", "{"],
)
def test_parse_json_frame_agrees_with_json_loads(text: str) -> None:
    try:
        want = json.loads(text)
    except ValueError:
        with pytest.raises(FrameError, match=r"^malformed JSON frame"):
            parse_json_frame(text)
        return
    got = parse_json_frame(text)
    assert got == want or (got != got and want != want)  # NaN
