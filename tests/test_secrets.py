"""No API key ever reaches a recording or an export, even one a server echoes
into the token stream split across many deltas."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thunderdome.core.events import LaneFailed, Notice, RaceFinished, RaceStarted, TokenDelta, Usage, WinnerDecided
from thunderdome.output.export import FORMATS, export_file, export_results
from thunderdome.core.metrics import compute_results
from thunderdome.race.runner import collect, run_race
from thunderdome.recording.record import Recorder, Redactor
from thunderdome.core.redact import REDACTED, env_secrets
from thunderdome.recording.replay import load_recording, replay_results
from thunderdome.core.specs import BackendSpec, TaskSpec

KEY = "sk-test-PLANTED-123456"
PLAIN = "plain-Secret-Value-42"  # held in a variable whose name has no telltale suffix
LONG = TaskSpec(name="t", title="t", kind="long", user="write", max_tokens=50, timeout=30)


def sim(name: str, profile: str, protocol: str = "openai", api_key_env: str | None = None, **options) -> BackendSpec:
    return BackendSpec(
        name=name, kind="sim", model=profile, profile=profile, protocol=protocol, api_key_env=api_key_env, options=options
    )


def assert_clean(text: str) -> None:
    for secret in (KEY, PLAIN):
        assert secret not in text
        assert secret[4:16] not in text  # not even a recognisable piece of it


async def test_a_recorded_sim_race_never_writes_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TEST_API_KEY", KEY)
    monkeypatch.setenv("LANE_CREDENTIAL", PLAIN)
    reply = f"Your key is {KEY}, yes {KEY}; and the other one: {PLAIN}. Bye."
    specs = [
        sim("echo-openai", "instant", api_key_env="MY_TEST_API_KEY", reply=reply),
        sim("echo-ollama", "instant", "ollama", api_key_env="LANE_CREDENTIAL", reply=reply),
        sim("echo-anthropic", "instant", "anthropic", reply=reply),
    ]
    path = tmp_path / "race.jsonl"
    live: list = []
    async with Recorder(path) as rec:
        standings = await run_race(LONG, specs, sinks=[collect(live), rec], emulator="thread")
    # the live stream really carried the key, split across deltas
    texts = {}
    for e in live:
        if isinstance(e, TokenDelta):
            texts[e.lane] = texts.get(e.lane, "") + e.text
    assert all(KEY in t for t in texts.values()) and len(texts) == 3
    assert not any(KEY in e.text for e in live if isinstance(e, TokenDelta))  # never whole in one delta
    raw = path.read_text(encoding="utf-8")
    assert_clean(raw)
    recording = load_recording(path)
    replayed = {}
    for e in recording.events:
        if isinstance(e, TokenDelta):
            replayed[e.lane] = replayed.get(e.lane, "") + e.text
    expected = reply.replace(KEY, REDACTED).replace(PLAIN, REDACTED)
    assert replayed == {lane: expected for lane in texts}
    # the header names the variable, never its value
    assert {"api_key_env": "MY_TEST_API_KEY"}.items() <= recording.header["backends"][0].items()
    # redaction changed text only: every figure is the live race's
    assert compute_results(recording.events) == standings.results()
    for fmt in FORMATS:
        assert_clean(export_file(path, fmt))
        assert_clean(export_results(standings.results(), fmt))


async def test_keys_in_any_field_are_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TEST_API_KEY", KEY)
    lanes = ({"name": "a", "kind": "openai", "model": "m", "url": f"http://127.0.0.1:1/v1?key={KEY}", "api_key_env": "MY_TEST_API_KEY"},)
    events = [
        RaceStarted(t=0.0, task="t", lanes=lanes),
        TokenDelta(t=0.1, lane="a", text=f"whole {KEY} in one delta"),
        Usage(t=0.2, lane="a", output_tokens=5),
        Notice(t=0.2, message=f"server said {KEY!r}", lane="a"),
        LaneFailed(t=0.3, lane="a", reason=f"HTTP 401: invalid api key {KEY}"),
        RaceFinished(t=0.3, winner=None),
    ]
    path = tmp_path / "r.jsonl"
    async with Recorder(path) as rec:
        for event in events:
            rec(event)
    assert_clean(path.read_text(encoding="utf-8"))
    error = next(e for e in load_recording(path).events if isinstance(e, LaneFailed))
    assert error.reason == f"HTTP 401: invalid api key {REDACTED}"
    results = replay_results(path)
    for fmt in FORMATS:
        assert_clean(export_file(path, fmt))
    # an export of live results (never recorded) is scrubbed too
    results["lanes"][0]["error"] = f"echo {KEY}"
    for fmt in FORMATS:
        assert_clean(export_results(results, fmt))


def test_env_secrets_picks_named_and_telltale_variables():
    env = {
        "MY_API_KEY": "abcdefgh12",
        "GH_TOKEN": "short",  # too short to be a key: left alone
        "DB_SECRET": "s3cr3t-value",
        "CUSTOM": "custom-key-value",
        "PATH": "/usr/bin:/bin",
    }
    assert env_secrets([], env) == {"abcdefgh12", "s3cr3t-value"}
    assert env_secrets(["CUSTOM", "MISSING"], env) == {"abcdefgh12", "s3cr3t-value", "custom-key-value"}


def _feed_all(redactor: Redactor, dicts: list[dict]) -> list[dict]:
    out = []
    for d in dicts:
        out += redactor.feed(d)
    return out + redactor.flush()


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(alphabet="ab sk-T", max_size=12),
    after=st.text(alphabet="ab sk-T", max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
    other=st.booleans(),
    race_wide=st.booleans(),
)
def test_a_key_split_anyhow_across_deltas_is_scrubbed(before, after, cuts, other, race_wide):
    text = before + KEY + after + KEY[:7]  # ends with a key prefix that never completes
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces = [text[i:j] for i, j in zip([0, *points], [*points, len(text)])]
    dicts = []
    for n, piece in enumerate(pieces):
        dicts.append(TokenDelta(t=n * 0.01, lane="a", text=piece).to_dict())
        if other:  # another lane's events interleave
            dicts.append(TokenDelta(t=n * 0.01, lane="b", text="x").to_dict())
        if race_wide:  # a winner called, a race notice: they end no lane's text
            dicts.append(WinnerDecided(t=n * 0.01, winner="b").to_dict() if n % 2 else Notice(t=n * 0.01).to_dict())
    dicts.append(LaneFailed(t=1.0, lane="a", reason="cut").to_dict())
    out = _feed_all(Redactor([KEY]), dicts)
    mine = [d for d in out if d.get("lane") == "a"]
    assert [d["t"] for d in mine] == [d["t"] for d in dicts if d.get("lane") == "a"]  # every delta, in order
    assert not race_wide or len([d for d in out if d["type"] in ("winner_decided", "notice")]) == len(pieces)
    assert mine[-1]["type"] == "lane_failed"
    joined = "".join(d.get("text", "") for d in mine)
    assert joined == text.replace(KEY, REDACTED)
    assert KEY not in json.dumps(out)
    assert len(out) == len(dicts)


def test_a_delta_that_only_looks_like_a_key_start_is_held_briefly_not_changed():
    red = Redactor([KEY])
    first = TokenDelta(t=0.1, lane="a", text="ask").to_dict()  # "sk" could begin the key
    assert red.feed(first) == []
    out = red.feed(TokenDelta(t=0.2, lane="a", text="ed nicely").to_dict())
    assert [d["text"] for d in out] == ["ask", "ed nicely"]
    assert red.flush() == []


def test_no_secrets_means_no_holding():
    red = Redactor([])
    d = TokenDelta(t=0.1, lane="a", text="sk-").to_dict()
    assert red.feed(d) == [d]
    assert asyncio.iscoroutinefunction(Recorder.close)


# -- the redaction core: redact first, then cut; URLs; a split across channels ------------------


def pieces_of(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def test_error_text_is_redacted_before_it_is_cut(monkeypatch):
    from thunderdome.backends.errors import body_message

    monkeypatch.setenv("MY_TEST_API_KEY", KEY)
    for pad in range(100, 171):  # the key before, across and after the 160-character cut
        body = json.dumps({"error": {"message": "x" * pad + f" bad key {KEY} \x1b]0;t\x07"}}).encode()
        line = body_message(body, "application/json")
        assert len(line) <= 160 and "\x1b" not in line and "\x07" not in line
        assert not any(piece in line for piece in pieces_of(KEY)), line


def test_a_key_cut_short_elsewhere_is_still_redacted():
    from thunderdome.core.redact import Secrets

    secrets = Secrets([KEY])
    assert secrets.redact(f"said {KEY[:12]}… more") == f"said {REDACTED}… more"
    assert secrets.redact(f"ends with {KEY[:9]}") == f"ends with {REDACTED}"
    assert secrets.redact("ask") == "ask"  # a short, ordinary beginning stays


def test_url_credentials_are_secrets_and_never_shown():
    from thunderdome.core.redact import scrub_urls, url_secrets

    url = "https://alice:hunter2-long@api.example.com/v1?key=AIzaQueryKey123&x=1"
    assert url_secrets(url) == {"hunter2-long", "AIzaQueryKey123"}  # a short user name is not a secret
    assert url_secrets("https://ghp_TokenAsUser123@host/") == {"ghp_TokenAsUser123"}
    assert scrub_urls(f"GET {url} failed") == f"GET https://{REDACTED}@api.example.com/v1?key={REDACTED}&x=1 failed"
    spec = BackendSpec(name="a", kind="openai", url=url, model="m")
    assert "hunter2" not in json.dumps(spec.public_dict()) and "AIzaQuery" not in json.dumps(spec.public_dict())


def test_a_key_split_across_the_reasoning_and_answer_channels_is_redacted():
    half = len(KEY) // 2
    dicts = [
        TokenDelta(t=0.1, lane="a", text=f"I think {KEY[:half]}", channel="reasoning").to_dict(),
        TokenDelta(t=0.2, lane="a", text=f"{KEY[half:]} is it", channel="answer").to_dict(),
    ]
    out = _feed_all(Redactor([KEY]), dicts)
    assert [d["channel"] for d in out] == ["reasoning", "answer"] and [d["t"] for d in out] == [0.1, 0.2]
    assert "".join(d["text"] for d in out) == f"I think {REDACTED} is it"


def test_a_key_pasted_as_a_variable_name_is_masked_but_names_are_not():
    from thunderdome.core.redact import mask_keylike

    assert mask_keylike("variable sk_live_0123456789abcdefXYZ is not set") == f"variable {REDACTED} is not set"
    assert mask_keylike("variable HOSTED_API_KEY is not set (/tmp/run_2024abcdefghijkl/b.yaml)") == (
        "variable HOSTED_API_KEY is not set (/tmp/run_2024abcdefghijkl/b.yaml)"
    )


def test_a_spec_made_in_a_child_process_teaches_that_process_its_secrets(monkeypatch):
    import pickle

    from thunderdome.core import redact

    monkeypatch.setenv("LANE_CREDENTIAL", PLAIN)
    spec = BackendSpec(name="a", kind="openai", url="http://u:pass-word-9@h/v1", model="m", api_key_env="LANE_CREDENTIAL")
    assert redact.redact(f"{PLAIN} pass-word-9") == f"{REDACTED} {REDACTED}"
    monkeypatch.setattr(redact, "_names", set())
    monkeypatch.setattr(redact, "_values", set())
    assert redact.redact(PLAIN) == PLAIN  # forgotten ...
    assert pickle.loads(pickle.dumps(spec)) == spec  # ... and learnt again when unpickled
    assert redact.redact(f"{PLAIN} pass-word-9") == f"{REDACTED} {REDACTED}"


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(alphabet="ab sk-T", max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
)
def test_for_display_only_a_possible_key_start_waits(before, cuts):
    from thunderdome.core.redact import HeldText, Secrets

    text = before + KEY + " ask " + KEY + KEY[:7]
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces = [text[i:j] for i, j in zip([0, *points], [*points, len(text)])]
    held: HeldText[str] = HeldText(Secrets([KEY]), divisible=True)
    final = text.replace(KEY, REDACTED)
    shown = ""
    for n, piece in enumerate(pieces):
        shown += "".join(t for _, t in held.push("answer" if n % 2 else "reasoning", piece))
        assert final.startswith(shown)  # never a piece of the key, never text out of order
    assert shown == final[: -len(KEY[:7])]  # all that waits is the unfinished key beginning
    shown += "".join(t for _, t in held.release())
    assert shown == final


@pytest.mark.parametrize("start", [2, 5, 6, 12])
def test_a_key_beginning_left_where_a_text_ends_is_a_cut_key(start):
    """``release_cut`` (a lane's turn or text ended there): a held key
    beginning of 6+ characters leaves redacted, a shorter one as it is."""
    from thunderdome.core.redact import MIN_FRAGMENT, HeldText, Secrets

    held: HeldText[str] = HeldText(Secrets([KEY]), divisible=True)
    first = held.push("reasoning", "said " + KEY[: start // 2])
    second = held.push("answer", KEY[start // 2 : start])
    shown = "".join(t for _, t in [*first, *second, *held.release_cut()])
    assert shown == ("said " + (REDACTED if start >= MIN_FRAGMENT else KEY[:start]))
    assert not held
