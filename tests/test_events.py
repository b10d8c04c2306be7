"""Events round-trip through JSON exactly; bad input is a clear error."""

from __future__ import annotations

import json

import pytest

from thunderdome.core.events import (
    EVENT_TYPES,
    EventFormatError,
    RaceStarted,
    TokenDelta,
    event_from_dict,
)


def sample(cls):
    kwargs = {"t": 1.234567891234}
    if "lane" in {f for f in cls.__dataclass_fields__}:
        kwargs["lane"] = "lane-1"
    return cls(**kwargs)


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_every_event_round_trips_through_json(cls):
    event = sample(cls)
    again = event_from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event
    assert type(again) is cls


def test_float_times_survive_exactly():
    event = TokenDelta(t=0.1 + 0.2, lane="a", text="[bold]x\x1b[31m", channel="reasoning")
    again = event_from_dict(json.loads(json.dumps(event.to_dict())))
    assert again.t == event.t and again.text == event.text


def test_race_started_lanes_are_a_tuple_after_loading():
    event = RaceStarted(t=0.0, task="x", lanes=({"name": "a"},))
    again = event_from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event


def test_unknown_fields_are_ignored():
    data = TokenDelta(t=1.0, lane="a", text="x").to_dict()
    data["added_in_a_later_version"] = 1
    assert event_from_dict(data).text == "x"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"type": "nope", "t": 1}, "unknown event type"),
        ({"type": "token_delta"}, "no numeric 't'"),
        ({"type": "token_delta", "t": "soon", "lane": "a"}, "no numeric 't'"),
        ({"type": "token_delta", "t": 1.0}, "token_delta event"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_bad_event_dicts(data, message):
    with pytest.raises(EventFormatError, match=message):
        event_from_dict(data)


def test_events_are_immutable():
    event = TokenDelta(t=1.0, lane="a", text="x")
    with pytest.raises(AttributeError):
        event.text = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data",
    [
        {"type": "token_delta", "t": 1.0, "lane": "a", "text": 3},
        {"type": "token_delta", "t": 1.0, "lane": "a", "channel": "loud"},
        {"type": "lane_started", "t": 1.0, "lane": 5},
        {"type": "race_started", "t": 0.0, "lanes": ["a"]},
        {"type": "usage", "t": 1.0, "lane": "a", "output_tokens": "12"},
        {"type": "verdict", "t": 1.0, "lane": "a", "passed": "yes"},
        {"type": "token_delta", "t": True, "lane": "a"},
    ],
)
def test_wrongly_typed_fields_are_format_errors(data):
    with pytest.raises(EventFormatError):
        event_from_dict(data)


def test_optional_fields_accept_null():
    event = event_from_dict({"type": "usage", "t": 1, "lane": "a", "output_tokens": None, "server_tps": 3})
    assert event.output_tokens is None and event.server_tps == 3
