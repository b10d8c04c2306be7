"""A long recording written quickly: 8 lanes of token deltas, for the replay
benchmark and the lazy-replay tests (never committed: written where asked).

Invariant: the file is a valid format-2 recording of a finished long race
(``load_recording`` reads it without a notice); ``events`` counts every line
after the header, and lane ``lane0`` wins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from thunderdome.core.events import LaneFinished, LaneStarted, RaceFinished, RaceStarted, RequestSent, TokenDelta
from thunderdome.recording.record import header_for

LANES = 8


def write_recording(path: str | Path, events: int = 1_000_000, *, lanes: int = LANES, rate: float = 200.0) -> Path:
    """Write a race of ``events`` events at ``rate`` token deltas per second per lane."""
    names = [f"lane{i}" for i in range(lanes)]
    infos = tuple({"name": n, "kind": "sim", "model": "instant", "url": ""} for n in names)
    start = RaceStarted(t=0.0, task="big", kind="long", title="a long race", lanes=infos, max_tokens=events)
    head = [start] + [e for n in names for e in (LaneStarted(t=0.0, lane=n), RequestSent(t=0.0, lane=n))]
    deltas = max(events - len(head) - lanes - 1, 0)
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    template = dumps(TokenDelta(t=0.0, lane="LANE", text="TEXT").to_dict())
    before, after = template.split('"t":0.0', 1)
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:
        out.write(dumps(header_for(start.to_dict())) + "\n")
        out.writelines(dumps(e.to_dict()) + "\n" for e in head)
        lines = []
        for k in range(deltas):
            t = 0.01 + (k // lanes) / rate
            lane = names[k % lanes]
            text = "\\n" if k % 97 == 96 else f" w{k // lanes}"
            lines.append(f'{before}"t":{t:.6f}{after.replace("LANE", lane, 1).replace("TEXT", text, 1)}\n')
            if len(lines) >= 65536:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
        end = 0.01 + (max(deltas - 1, 0) // lanes) / rate + 0.001
        tail = [LaneFinished(t=end + i * 1e-4, lane=n, reason="stop") for i, n in enumerate(names)]
        tail.append(RaceFinished(t=end + lanes * 1e-4, winner=names[0]))
        out.writelines(dumps(e.to_dict()) + "\n" for e in tail)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.big_recording", description=__doc__.split("\n")[0])
    p.add_argument("path")
    p.add_argument("--events", type=int, default=1_000_000)
    args = p.parse_args(argv)
    print(write_recording(args.path, args.events))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
