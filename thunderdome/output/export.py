"""Race results as JSON, CSV or a Markdown table that pastes into a GitHub issue.

Invariant: an export is a pure function of a results dict (the ``--json``
contract of ``metrics.Standings.results()``); it adds no figure of its own,
only formatting, each figure's as every screen formats it
(``thunderdome.core.figures``). Cell text (model output, error messages) is escaped so the
Markdown table never breaks; every string is redacted of known secrets
(``thunderdome.core.redact``) and made visible (``thunderdome.core.visible``: no
control character from a model, a server or a recording reaches a terminal
through ``export`` to stdout, nor a CSV or Markdown file).
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
from pathlib import Path
from typing import Any, Callable

from thunderdome.core import figures
from thunderdome.core.lane_stats import CLIENT_LIMITED_NOTE, LaneStats, itl_limited_note, ttft_split_note
from thunderdome.core.redact import known, map_strings
from thunderdome.core.tool_figures import has_tool_figures
from thunderdome.core.visible import json_safe, visible

FORMATS = ("json", "csv", "md")
DASH = "—"
CELL_MAX = 160
"""Characters of free text (errors, verdicts) kept in a Markdown cell."""

CSV_COLUMNS = (
    "task",
    "started_at",
    "rank",
    "lane",
    "kind",
    "model",
    "program",
    "status",
    "ttfb_s",
    "ttft_s",
    "ttfa_s",
    "e2e_s",
    "finish_s",
    "tokens",
    "tokens_source",
    "count_check",
    "output_tps",
    "server_tps",
    "itl_p50_ms",
    "itl_p90_ms",
    "itl_p99_ms",
    "itl_max_ms",
    "stalls",
    "deltas_per_read",
    "itl_limited",
    "completion_s",
    "turns",
    "start_skew_ms",
    "finish_reason",
    "eliminated_by",
    "verdict",
    "error",
    "input_tokens",
    "cost",
    "time_scale",
    "ttftc_s",
    "tta_s",
    "model_s",
    "tool_s",
    "requests",
    "startup_s",
    "ttft_queue_s",
    "ttft_load_s",
    "ttft_prefill_s",
    "ttft_rest_s",
    "cached_tokens",
    "prompt_cached",
)

FOOTNOTES = (
    "TTFT: time from request sent to the first non-empty token (answer, reasoning or tool-call arguments).",
    "TTFA: time from request sent to the first answer token (later than TTFT for reasoning models).",
    "e2e: time from request sent to the last token.",
    "tok/s: output speed, (tokens − 1) / (e2e − TTFT): generation rate, TTFT excluded.",
    "server tok/s: the server's own figure on its own definition (N / decode time, first token included), when it reports one.",
    "ITL: inter-token latency, the gaps between consecutive streamed chunks (p50 / p99; max: the longest).",
    "stalls: gaps longer than max(1 s, 10 × the lane's median gap).",
    "tokens: output tokens as reported by the server (usage, or Ollama eval_count).",
)
COST_NOTE = "cost $: input and output tokens × the backend's price per million (— : unpriced, or a priced count unknown)."
COMPLETION_NOTE = "completion: time from race start until the lane's command passed the checker."
FINISH_NOTE = "finish: time from race start until the lane's last token (lanes that finished cleanly); the first wins."
ESTIMATE_NOTE = (
    "\\* estimated: streamed chunks were counted, as the server reported no token count "
    "or one its stream contradicts (the lane's note says which)."
)
TOOL_NOTE = (
    "1st call: time from request sent to the first tool call's name; action: to its arguments complete "
    "(the command could run); model / tool: time spent waiting on the model (streamed turns, and an agent's "
    "non-streamed chats, each moment once) / running the calls, summed over turns."
)
AGENT_NOTE = (
    "agent: the program that raced the lane; start-up: from its launch to its first turn's request; "
    "requests: all it sent upstream (turns, non-streamed chats, model-list, version and token-count probes)."
)


def export_results(results: dict[str, Any], fmt: str) -> str:
    """Render a results dict as ``json``, ``csv`` or ``md`` text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (choose json, csv or md)")
    secrets = known()
    safe = map_strings(results, lambda text: visible(secrets.redact(text)))
    return _RENDERERS[fmt](safe)


def export_file(recording_path: str | Path, fmt: str) -> str:
    """Load a recording and export its results. Raises RecordingError."""
    from thunderdome.recording.replay import replay_results

    return export_results(replay_results(recording_path), fmt)


# --- JSON / CSV ----------------------------------------------------------------------------


def to_json(results: dict[str, Any]) -> str:
    return json_safe(json.dumps(results, indent=2, ensure_ascii=False)) + "\n"


def to_csv(results: dict[str, Any]) -> str:
    race = results.get("race") or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for lane in results.get("lanes") or []:
        split = {f"ttft_{part}": value for part, value in (lane.get("ttft_split") or {}).items()}
        row = {**lane, **split, "lane": lane.get("name"), "task": race.get("task"), "started_at": race.get("started_at")}
        writer.writerow(["" if row.get(col) is None else row.get(col) for col in CSV_COLUMNS])
    return out.getvalue()


# --- Markdown --------------------------------------------------------------------------------


def md_cell(text: Any, limit: int = CELL_MAX) -> str:
    """One table cell: no pipe, newline or HTML tag can break the row."""
    s = "" if text is None else str(text)
    s = s.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    s = html.escape(s, quote=False).replace("|", "\\|").replace("\n", "<br>")
    return s or DASH


def _number(value: Any) -> float | None:
    """A figure from a results dict (untrusted: anything but a number is unknown)."""
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else value


def _num(value: Any, decimals: int) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:.{decimals}f}"


def _seconds(value: Any) -> str:
    """A time as every screen shows it (``figures.seconds_digits``)."""
    return figures.seconds_digits(_number(value))


def _rate(value: Any) -> str:
    """A tok/s figure as every screen shows it (``figures.rate_digits``)."""
    return figures.rate_digits(_number(value))


def _tokens(lane: dict[str, Any]) -> str:
    tokens = lane.get("tokens")
    if tokens is None:
        return DASH
    return f"{tokens}*" if lane.get("tokens_source") == "estimate" else str(tokens)


def _outcome(lane: dict[str, Any]) -> str:
    parts = [str(p) for p in (lane.get("error"), lane.get("verdict"), lane.get("count_check")) if p]
    if lane.get("itl_limited") is True:
        per_read = lane.get("deltas_per_read")
        parts.append(itl_limited_note(per_read if isinstance(per_read, (int, float)) else None))
    if lane.get("eliminated_by"):
        parts.append(f"eliminated by {lane['eliminated_by']}")
    return "; ".join(parts)


def _date(started_at: str) -> str:
    if not started_at:
        return "date unknown"
    try:
        when = _dt.datetime.fromisoformat(started_at)
    except ValueError:
        return started_at
    if when.tzinfo is None:
        return when.strftime("%Y-%m-%d %H:%M:%S")
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


Column = tuple[str, bool, Callable[[dict[str, Any]], str]]
"""(header, right-aligned, cell function)."""


def _columns(kind: str, priced: bool = False, tools: bool = False, agents: bool = False) -> list[Column]:
    cols: list[Column] = [
        ("#", True, lambda l: _num(l.get("rank"), 0)),
        ("lane", False, lambda l: md_cell(l.get("name"), 60)),
        ("model", False, lambda l: md_cell(l.get("model"), 60)),
    ]
    if agents:
        cols.append(("agent", False, lambda l: md_cell(l.get("program") or DASH, 30)))
    cols += [
        ("status", False, lambda l: md_cell(l.get("status"), 30)),
        ("TTFT s", True, lambda l: _seconds(l.get("ttft_s"))),
        ("TTFA s", True, lambda l: _seconds(l.get("ttfa_s"))),
        ("e2e s", True, lambda l: _seconds(l.get("e2e_s"))),
        ("tokens", True, _tokens),
        ("tok/s", True, lambda l: _rate(l.get("output_tps"))),
        ("server tok/s", True, lambda l: _rate(l.get("server_tps"))),
        ("ITL p50 ms", True, lambda l: _num(l.get("itl_p50_ms"), 1)),
        ("ITL p99 ms", True, lambda l: _num(l.get("itl_p99_ms"), 1)),
        ("ITL max ms", True, lambda l: _num(l.get("itl_max_ms"), 1)),
        ("stalls", True, lambda l: _num(l.get("stalls"), 0)),
    ]
    if priced:
        cols.append(("cost $", True, lambda l: _num(l.get("cost"), 6)))
    done = "completion s" if kind == "thunderdome" else "finish s"
    cols.append((done, True, lambda l: _seconds(figures.done_of(l, kind))))
    if agents:
        cols.append(("start-up s", True, lambda l: _num(l.get("startup_s"), 3)))
        cols.append(("requests", True, lambda l: _num(l.get("requests"), 0)))
    if tools:
        cols += [
            ("1st call s", True, lambda l: _num(l.get("ttftc_s"), 3)),
            ("action s", True, lambda l: _num(l.get("tta_s"), 3)),
            ("turns", True, lambda l: _num(l.get("turns"), 0)),
            ("model s", True, lambda l: _num(l.get("model_s"), 3)),
            ("tool s", True, lambda l: _num(l.get("tool_s"), 3)),
        ]
    cols.append(("verdict / error", False, lambda l: md_cell(_outcome(l))))
    return cols


def _table(columns: list[Column], lanes: list[dict[str, Any]]) -> list[str]:
    rows = [[fn(lane) for _, _, fn in columns] for lane in lanes]
    widths = [max([len(h), 3, *(len(r[i]) for r in rows)]) for i, (h, _, _) in enumerate(columns)]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if right else c.ljust(w) for c, w, (_, right, _) in zip(cells, widths, columns)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if right else ":" + "-" * (w - 1) for w, (_, right, _) in zip(widths, columns)]
    return [line([h for h, _, _ in columns]), line(rule), *(line(r) for r in rows)]


def _winner_line(results: dict[str, Any], kind: str) -> str:
    lanes = results.get("lanes") or []
    winner = results.get("winner")
    lane = next((l for l in lanes if l.get("name") == winner), None)
    if not winner or lane is None:
        if lanes and all(l.get("status") == "error" for l in lanes):
            return "**No winner**: every lane failed."
        return "**No winner.**"
    model = f" ({md_cell(lane.get('model'), 60)})" if lane.get("model") else ""
    how = figures.winner_words(kind, _number(figures.done_of(lane, kind)))
    if kind != "thunderdome":
        how += f" at {figures.rate(_number(lane.get('output_tps')))}"
    return f"**Winner: {md_cell(winner, 60)}**{model}, {how}."


def _isolation_line(race: dict[str, Any], kind: str) -> str:
    iso = race.get("isolation") or "none"
    if kind != "thunderdome":
        return f"Isolation: {md_cell(iso, 30)} (a long race runs no commands)."
    if iso == "bwrap":
        return "Isolation: bwrap (bubblewrap sandbox: no network, throwaway work dir, cleared environment)."
    return f"Isolation: **{md_cell(iso, 30)}**, weaker than the bubblewrap sandbox (bwrap was not available)."


def _split_lines(lanes: list[dict[str, Any]]) -> list[str]:
    """Where a TTFT went, for each lane whose split is news (``LaneStats.ttft_split_worth_a_note``)."""
    out = []
    for lane in lanes:
        split, ttft = lane.get("ttft_split"), _number(lane.get("ttft_s"))
        if isinstance(split, dict) and ttft is not None and LaneStats.ttft_split_worth_a_note(split, ttft):
            out.append(f"- {md_cell(lane.get('name'), 60)}: {md_cell(ttft_split_note(ttft, split))}")
    return out


def to_markdown(results: dict[str, Any]) -> str:
    race = results.get("race") or {}
    lanes = list(results.get("lanes") or [])
    kind = race.get("kind") or "long"
    task = race.get("task") or "race"
    out = [f"### Thunderdome: {md_cell(task, 80)}, {_date(race.get('started_at') or '')}", ""]
    facts = [f"{kind} race"]
    if race.get("title") and race.get("title") != task:
        facts.insert(0, md_cell(race["title"], 120))
    if race.get("win_rule"):
        facts.append(f"rule {race['win_rule']}")
    if race.get("max_tokens"):
        facts.append(f"max_tokens {race['max_tokens']}")
    if race.get("duration_s") is not None:
        facts.append(f"duration {_seconds(race['duration_s'])} s")
    if race.get("time_scale", 1.0) != 1.0:
        facts.append(f"**sim time ×{race['time_scale']:g}: sim lanes' times are not real**")
    out += [" · ".join(facts), ""]
    tools = any(has_tool_figures(l) for l in lanes)
    if race.get("client_limited") is True:
        out += [f"**⚠ {CLIENT_LIMITED_NOTE}**", ""]
    agents = any(l.get("program") for l in lanes)
    out += _table(_columns(kind, any(l.get("cost") is not None for l in lanes), tools, agents), lanes)
    out += ["", _winner_line(results, kind), "", _isolation_line(race, kind), ""]
    splits = _split_lines(lanes)
    if splits:
        out += [*splits, ""]
    notes = list(FOOTNOTES)
    notes.append(COMPLETION_NOTE if kind == "thunderdome" else FINISH_NOTE)
    if any(l.get("cost") is not None for l in lanes):
        notes.append(COST_NOTE)
    if agents:
        notes.append(AGENT_NOTE)
    if tools:
        notes.append(TOOL_NOTE)
    if any(l.get("tokens_source") == "estimate" for l in lanes):
        notes.append(ESTIMATE_NOTE)
    notes.append(f"{DASH}: not measured (the lane never got that far).")
    out += [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {"json": to_json, "csv": to_csv, "md": to_markdown}

__all__ = ["FORMATS", "CSV_COLUMNS", "export_file", "export_results", "md_cell", "to_csv", "to_json", "to_markdown"]
