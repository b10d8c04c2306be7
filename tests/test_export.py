"""Exports from a fixed results dict: JSON as is, CSV that parses back, and a
Markdown table that survives pipes and newlines in model output."""

from __future__ import annotations

import copy
import csv
import io
import json
import re

import pytest

from thunderdome.core.events import LaneFinished, RaceFinished, RaceStarted, RequestSent, TokenDelta
from thunderdome.output.export import CSV_COLUMNS, export_file, export_results, md_cell
from thunderdome.recording.record import Recorder


def lane(**kw) -> dict:
    base = {
        "name": "x", "kind": "sim", "model": "m", "status": "finished", "rank": 1,
        "ttfb_s": None, "ttft_s": None, "ttfa_s": None, "e2e_s": None, "tokens": 0,
        "tokens_source": "usage", "output_tps": None, "itl_p50_ms": None, "itl_p90_ms": None,
        "itl_p99_ms": None, "server_tps": None, "completion_s": None, "turns": 1, "verdict": "",
        "error": None, "eliminated_by": None, "finish_reason": "stop", "start_skew_ms": 0.01,
    }  # fmt: skip
    base.update(kw)
    return base


LONG_RESULTS = {
    "race": {
        "task": "long-essay", "kind": "long", "title": "Write a long essay", "win_rule": None,
        "started_at": "2026-03-01T09:30:05.250+00:00", "isolation": "none", "max_tokens": 878,
        "duration_s": 93.9,
    },
    "lanes": [
        lane(name="cloud", model="gpt-oss-120b", status="winner", rank=1, ttfb_s=0.85, ttft_s=0.9, ttfa_s=0.9,
             e2e_s=5.1212, finish_s=5.1412, tokens=878, output_tps=208.0, itl_p50_ms=4.81, itl_p99_ms=6.2, finish_reason="length"),
        lane(name="spark", kind="ollama", model="gpt-oss:120b", rank=2, ttft_s=1.39, ttfa_s=3.2, e2e_s=21.83, finish_s=21.85,
             tokens=878, tokens_source="server", output_tps=42.9, server_tps=43.26, itl_p50_ms=23.3, itl_p99_ms=31.0),
        lane(name="pipe|lane", kind="openai", model="llama|3", status="error", rank=3, ttft_s=2.05, e2e_s=9.0,
             tokens=57, tokens_source="estimate", output_tps=8.7, itl_p50_ms=115.0, itl_p99_ms=180.5,
             error="stream cut | after 57 tokens\nsecond line <b>bold</b>", finish_reason=None),
    ],
    "winner": "cloud",
}  # fmt: skip

TD_RESULTS = {
    "race": {
        "task": "sigkill", "kind": "thunderdome", "title": "Last one standing", "win_rule": "first_correct",
        "started_at": "2026-03-01T09:40:00+00:00", "isolation": "rlimits", "max_tokens": 256, "duration_s": 2.5,
    },
    "lanes": [
        lane(name="cloud", status="winner", rank=1, ttft_s=0.9, ttfa_s=0.9, e2e_s=1.0, tokens=12,
             output_tps=110.0, completion_s=1.04, verdict="pass"),
        lane(name="local", status="eliminated", rank=2, ttft_s=2.0, e2e_s=2.4, tokens=30, completion_s=None,
             verdict="fail: file differs", eliminated_by="cloud"),
    ],
    "winner": "cloud",
}  # fmt: skip


def table_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("|")]


def cells(row: str) -> list[str]:
    """Split a GFM table row on unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_json_is_the_results_dict_pretty_printed():
    out = export_results(LONG_RESULTS, "json")
    assert json.loads(out) == LONG_RESULTS
    assert out.startswith('{\n  "race": {') and out.endswith("}\n")


def test_csv_has_one_row_per_lane_with_units_in_the_header():
    out = export_results(LONG_RESULTS, "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert {"ttft_s", "output_tps", "itl_p50_ms", "itl_p99_ms", "e2e_s", "server_tps"} <= set(CSV_COLUMNS)
    assert [r["lane"] for r in rows] == ["cloud", "spark", "pipe|lane"]
    cloud, spark, broken = rows
    assert cloud["ttft_s"] == "0.9" and cloud["e2e_s"] == "5.1212" and cloud["rank"] == "1"
    assert cloud["server_tps"] == "" and cloud["task"] == "long-essay"  # None is an empty cell
    assert spark["server_tps"] == "43.26" and spark["tokens_source"] == "server"
    assert broken["error"] == "stream cut | after 57 tokens\nsecond line <b>bold</b>"  # round-trips


def test_markdown_table_shape_and_numbers():
    md = export_results(LONG_RESULTS, "md")
    lines = md.splitlines()
    assert lines[0] == "### Thunderdome: long-essay, 2026-03-01 09:30:05 UTC"
    rows = table_rows(md)
    head, rule, *body = rows
    assert cells(head) == [
        "#", "lane", "model", "status", "TTFT s", "TTFA s", "e2e s", "tokens", "tok/s",
        "server tok/s", "ITL p50 ms", "ITL p99 ms", "ITL max ms", "stalls", "finish s", "verdict / error",
    ]  # fmt: skip
    assert len(body) == 3
    assert all(len(cells(r)) == len(cells(head)) for r in rows)  # no row breaks
    assert len({len(r) for r in rows}) == 1  # padded: columns line up as plain text
    assert cells(rule)[4].endswith(":") and cells(rule)[1].startswith(":")  # numbers right, text left
    assert cells(body[0]) == [
        "1", "cloud", "gpt-oss-120b", "winner", "0.900", "0.900", "5.12", "878", "208.0", "—", "4.8", "6.2",
        "—", "—", "5.14", "—",
    ]  # fmt: skip
    assert cells(body[1])[9] == "43.3"
    assert cells(body[1])[14] == "21.9" and cells(body[2])[14] == "—"  # finish: the race clock, clean finishes only
    assert "0.900 |" in body[0]  # right-aligned: the value ends at the cell border


def test_markdown_escapes_pipes_newlines_and_html():
    md = export_results(LONG_RESULTS, "md")
    broken = table_rows(md)[4]
    got = cells(broken)
    assert got[1] == "pipe\\|lane" and got[2] == "llama\\|3"
    assert got[-1] == "stream cut \\| after 57 tokens<br>second line &lt;b&gt;bold&lt;/b&gt;"
    assert got[7] == "57*"
    assert "\\* estimated" in md  # the footnote for the marker


def test_markdown_calls_out_winner_isolation_and_footnotes():
    md = export_results(LONG_RESULTS, "md")
    assert "**Winner: cloud** (gpt-oss-120b), finished first in 5.14 s at 208.0 tok/s." in md
    assert "Isolation: none" in md
    for name in ("TTFT", "TTFA", "e2e", "tok/s", "ITL", "server tok/s"):
        assert re.search(rf"^- {re.escape(name)}: ", md, re.M), name
    assert "completion" not in md  # a long race has no completion column


def test_markdown_for_a_thunderdome_race():
    md = export_results(TD_RESULTS, "md")
    head, _, winner, loser = table_rows(md)
    assert "completion s" in cells(head)
    assert cells(winner)[cells(head).index("completion s")] == "1.04"
    assert cells(loser)[-1] == "fail: file differs; eliminated by cloud"
    assert "**Winner: cloud** (m), completed the task in 1.04 s." in md
    assert "**rlimits**" in md and "weaker" in md  # the sandbox fallback is not hidden
    assert re.search(r"^- completion: ", md, re.M)
    assert "\\* estimated" not in md  # no estimate, no footnote


def test_no_winner_and_missing_fields():
    results = copy.deepcopy(LONG_RESULTS)
    results["winner"] = None
    for item in results["lanes"]:
        item["status"] = "error"
    results["race"]["started_at"] = ""
    md = export_results(results, "md")
    assert "every lane failed" in md and "date unknown" in md


def test_md_cell_never_breaks_a_row():
    assert md_cell(None) == "—" and md_cell("") == "—"
    assert md_cell("a|b\r\nc") == "a\\|b<br>c"
    assert md_cell("x" * 500, limit=10) == "x" * 9 + "…"
    assert "\n" not in md_cell("\n".join(["line"] * 50))


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown export format"):
        export_results(LONG_RESULTS, "xlsx")


async def test_export_file_reads_a_recording(tmp_path):
    path = tmp_path / "r.jsonl"
    lanes = ({"name": "solo", "kind": "sim", "model": "instant", "url": ""},)
    events = [
        RaceStarted(t=0.0, task="tiny", kind="long", lanes=lanes, started_at="2026-03-01T10:00:00+00:00"),
        RequestSent(t=0.01, lane="solo"),
        TokenDelta(t=0.11, lane="solo", text="a"),
        TokenDelta(t=0.21, lane="solo", text="b"),
        LaneFinished(t=0.22, lane="solo", reason="stop"),
        RaceFinished(t=0.22, winner="solo"),
    ]
    async with Recorder(path) as rec:
        for event in events:
            rec(event)
    data = json.loads(export_file(path, "json"))
    assert data["winner"] == "solo" and data["lanes"][0]["tokens"] == 2
    assert data["lanes"][0]["ttft_s"] == pytest.approx(0.1)
    row = cells(table_rows(export_file(path, "md"))[2])
    assert row[:4] == ["1", "solo", "instant", "winner"] and row[4] == "0.100" and row[7] == "2*"
