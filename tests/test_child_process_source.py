"""The race in a child process: events arrive in order, recordings are written,
and stop() ends the race cleanly (no child left behind)."""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time

import pytest

from thunderdome.core import events as ev
from thunderdome.race.tasks import load_task
from thunderdome.recording.replay import load_recording
from thunderdome.sources.child_process import ProcessSource, child_race_source
from thunderdome.core.specs import BackendSpec


def sim(name: str, profile: str) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile=profile, model=profile)


def test_a_race_in_a_child_process_streams_its_events_and_records(tmp_path):
    task = dataclasses.replace(load_task("long-essay"), max_tokens=40)
    path = tmp_path / "race.jsonl"
    source = child_race_source(task, [sim("a", "instant"), sim("b", "fast-local")], record_path=path,
                               emulator="thread")
    got: list[ev.Event] = []
    source.start(got.append)
    assert source.done.wait(60), "the race process never finished"
    source.stop()
    assert source.error is None
    assert isinstance(got[0], ev.RaceStarted) and isinstance(got[-1], ev.RaceFinished)
    assert {e.lane for e in got if isinstance(e, ev.LaneFinished)} == {"a", "b"}
    recorded = load_recording(path).events
    assert [e.to_dict() for e in recorded] == [e.to_dict() for e in got]
    assert source._proc.poll() == 0
    assert source.recording is not None and source.recording.complete and source.recording.path == str(path)


def test_stop_mid_race_interrupts_the_lanes_and_reaps_the_child():
    task = dataclasses.replace(load_task("long-essay"), max_tokens=400)
    source = child_race_source(task, [sim("slow", "rtx4090-offload")], emulator="thread")
    got: list[ev.Event] = []
    first_token = threading.Event()

    def on_event(event: ev.Event) -> None:
        got.append(event)
        if isinstance(event, ev.TokenDelta):
            first_token.set()

    source.start(on_event)
    assert first_token.wait(60), "no token arrived"
    started = time.monotonic()
    source.stop(timeout=10)
    assert time.monotonic() - started < 12
    assert source.done.is_set()
    assert source._proc.poll() is not None
    ends = [e for e in got if isinstance(e, ev.LaneFailed)]
    assert ends and ends[0].reason == "race interrupted"
    assert isinstance(got[-1], ev.RaceFinished) and got[-1].reason == "interrupted"


def test_a_main_the_child_cannot_load_is_reported():
    async def local_main(sink):  # a closure: not importable by the child
        return None

    source = ProcessSource(local_main)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        source.start(lambda e: None)  # refused before any process is spawned
    assert source._proc is None


def _one_of_each_event() -> list[ev.Event]:
    classes = [c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.Event)]
    made = []
    for cls in classes:
        needed = [f for f in dataclasses.fields(cls)
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        made.append(cls(**{f.name: (1.25 if f.name == "t" else f"{cls.__name__}.{f.name}") for f in needed}))
    return made


def test_events_cross_the_pipe_by_their_fields_and_load_as_any_pickle():
    from thunderdome.sources.base import RecordingStatus
    from thunderdome.sources.child_process import _dumps

    items: list[object] = [*_one_of_each_event(), ev.TokenDelta(t=0.5, lane="a", text="é\x00", channel="reasoning", turn=3),
                           RecordingStatus("race.jsonl", error="disk full", events=3, last_t=0.5)]
    data = _dumps(("events", items))
    assert pickle.loads(data) == ("events", items)
    assert [type(x) for x in pickle.loads(data)[1]] == [type(x) for x in items]
