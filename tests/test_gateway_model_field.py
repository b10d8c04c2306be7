"""The gateway puts the lane's model in a request that names another with only
that value's bytes changed, never fooled by a hostile body.

Pure checks of ``gateway.model_field`` (against ``json.loads``, by hand and
on generated bodies), then the real gateway over loopback HTTP in front of the
recording upstream of ``test_gateway``: what upstream receives is the agent's
bytes but for the top-level ``model`` value, or a re-encoding when that value
is not certain (a duplicate key, no model, a directive of the agent's own).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings, strategies as st

from test_gateway import REAL, THROWAWAY, Clock, recorder  # noqa: F401  # type: ignore[import-not-found]  # the fixture
from thunderdome.backends import make_backend
from thunderdome.gateway import Gateway, Upstream
from thunderdome.gateway.model_field import read_object, with_model
from thunderdome.core.specs import BackendSpec

LANE = "lane-model"
HOSTILE = {
    "the name in a message": rb'{"messages":[{"role":"user","content":"\"model\": \"small\", model small"}],'
                             rb'"model":"small","stream":true}',
    "an escaped key and value": rb'{"mod\u0065l":"sm\u0061ll","stream":true,"messages":[{"role":"user","content":"hi"}]}',
    "odd whitespace": b'\r\n\t{ "stream"\t:\ntrue ,\r\n "model" \n:\t "small" ,"messages":[] }\n ',
    "a nested model key": rb'{"metadata":{"model":"small"},"model":"small","stream":true,"messages":[]}',
    "a model key inside a string key": rb'{"\"model\"":"small","model":"sm\"all","stream":true,"messages":[]}',
    "non-ASCII before the model": '{"messages":[{"role":"user","content":"café ☕ 𝄞"}],"model":"small","stream":true}'.encode(),
    "a model that is not a string": b'{"model":null,"stream":true,"messages":[]}',
    "the lane's model elsewhere": b'{"note":"lane-model","model":"small","stream":true,"messages":[]}',
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_only_the_top_level_model_changes(raw: bytes) -> None:
    top = read_object(raw)
    assert top is not None and top.value == json.loads(raw)
    _assert_swapped(raw, top, with_model(raw, top, LANE))


def _assert_swapped(raw: bytes, top: Any, swapped: bytes | None) -> None:
    """``swapped`` is ``raw`` with the lane's model for its one top-level model value."""
    assert swapped is not None and json.loads(swapped) == {**json.loads(raw), "model": LANE}
    (lo, hi), = top.spans["model"]  # every byte before and after the value is the agent's own
    head, tail = len(top.text[:lo].encode()), len(top.text[hi:].encode())
    assert swapped[:head] == raw[:head] and swapped[len(swapped) - tail:] == raw[len(raw) - tail:]
    assert swapped[head:len(swapped) - tail] == json.dumps(LANE).encode()


NOT_CERTAIN = {
    "a duplicate model key": b'{"model":"small","stream":true,"model":"other"}',
    "no model": b'{"stream":true,"messages":[]}',
}


@pytest.mark.parametrize("raw", NOT_CERTAIN.values(), ids=NOT_CERTAIN.keys())
def test_a_model_that_is_not_one_top_level_value_is_left_to_a_re_encoding(raw: bytes) -> None:
    top = read_object(raw)
    assert top is not None and top.value == json.loads(raw)  # the last duplicate wins, as json.loads has it
    assert with_model(raw, top, LANE) is None


NOT_AN_OBJECT = [b"", b"[1]", b'"model"', b"{", b'{"model":"a",}', b'{"model" "a"}', b'{"model":"a"} x',
                 b'{"model":"a"}{}', b"{'model':'a'}", b'{"model":"\xff"}', b"\xef\xbb\xbf{}", b'{"a":[' * 100_000,
                 b'{"a":"\x01"}', b'{"model":NaN} ', b"{}"]


@pytest.mark.parametrize("raw", NOT_AN_OBJECT)
def test_whatever_json_loads_refuses_is_refused(raw: bytes) -> None:
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError):
        expected = None
    top = read_object(raw)
    if raw.startswith(b"\xef\xbb\xbf"):  # json.loads reads a BOM; this leaves such a body to it
        assert top is None
    elif isinstance(expected, dict):
        assert top is not None and top.value == expected
    else:
        assert top is None


_KEYS = st.sampled_from(["model", "stream", "messages", "mod\\u0065l", '\\"model\\"', "max_tokens"])
_WS = st.text(alphabet=" \t\r\n", max_size=3)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["model", '"model":"x"']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["model", "content"]), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _bodies(draw: Any) -> bytes:
    """JSON objects written by hand: escaped keys, duplicates, whitespace anywhere."""
    pairs = draw(st.lists(st.tuples(_KEYS, _VALUES), max_size=5))
    ws = lambda: draw(_WS)  # noqa: E731
    items = [f'{ws()}"{key}"{ws()}:{ws()}{json.dumps(value, ensure_ascii=draw(st.booleans()))}{ws()}'
             for key, value in pairs]
    return f"{ws()}{{{','.join(items) or ws()}}}{ws()}".encode()


@settings(max_examples=300, deadline=None)
@given(_bodies())
def test_generated_bodies_read_as_json_loads_reads_them_and_swap_only_the_model(raw: bytes) -> None:
    top = read_object(raw)
    assert top is not None and top.value == json.loads(raw)
    swapped = with_model(raw, top, LANE)
    if len(top.spans.get("model", [])) == 1:
        _assert_swapped(raw, top, swapped)
    else:
        assert swapped is None


async def _post(gateway: Gateway, raw: bytes) -> httpx2.Response:
    url = await gateway.listen_tcp()
    async with httpx2.AsyncClient(timeout=10) as client:
        return await client.post(url + "/v1/chat/completions", content=raw,
                                 headers={"authorization": f"Bearer {THROWAWAY}", "content-type": "application/json"})


async def _upstream_gets(recorder: Any, monkeypatch: Any, raw: bytes) -> tuple[str, int]:  # noqa: F811
    monkeypatch.setenv("TD_TEST_REAL_KEY", REAL)
    spec = BackendSpec(name="hosted", kind="openai", url=recorder.url, model=LANE, api_key_env="TD_TEST_REAL_KEY")
    backend = make_backend(spec)
    gateway = Gateway("hosted", Upstream.of(backend), [].append, Clock())
    try:
        response = await _post(gateway, raw)
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert response.status_code == 200 and recorder.seen[-1]["headers"]["authorization"] == f"Bearer {REAL}"
    return recorder.seen[-1]["raw"], gateway.turns


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
async def test_upstream_gets_the_agents_bytes_with_the_lanes_model(recorder, monkeypatch, raw: bytes) -> None:  # noqa: F811
    seen, turns = await _upstream_gets(recorder, monkeypatch, raw)
    top = read_object(raw)
    assert top is not None and seen.encode() == with_model(raw, top, LANE)
    assert json.loads(seen) == {**json.loads(raw), "model": LANE} and turns == 1


@pytest.mark.parametrize("raw", [*NOT_CERTAIN.values(), b'{"model":"small","stream":true,"thunderdome_sim":{"reply":"x"}}'],
                         ids=[*NOT_CERTAIN.keys(), "a directive of the agent's own"])
async def test_a_body_not_certain_to_swap_goes_upstream_re_encoded(recorder, monkeypatch, raw: bytes) -> None:  # noqa: F811
    seen, turns = await _upstream_gets(recorder, monkeypatch, raw)
    body = json.loads(raw)
    body.pop("thunderdome_sim", None)
    assert json.loads(seen) == {**body, "model": LANE} and seen.count('"model"') == 1 and turns == 1


async def test_the_lanes_model_spelt_with_escapes_goes_on_as_the_agents_bytes(recorder, monkeypatch) -> None:  # noqa: F811
    raw = rb'{"model":"lane-mod\u0065l","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    seen, turns = await _upstream_gets(recorder, monkeypatch, raw)
    assert seen.encode() == raw and turns == 1
