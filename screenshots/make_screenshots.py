"""Make the README screenshots from the real app and real sim races.

Invariant: every picture is the real app (``make_app``) fed by real races
over loopback HTTP against the built-in emulator (the public experiment's
three profiles, seeded jitter); nothing is drawn by hand. Each race is
recorded next to the pictures' temp folder, so a picture can be reproduced
from its recording.

- ``setup.svg``: the setup screen (no backends file, discovery off).
- ``race.svg``: the long-essay race, live, 12.3 s in (cloud done, the others
  streaming).
- ``results.svg``: the same race's results screen (waits for the RTX 4090
  lane: about 94 s).
- ``thunderdome.svg``: the sigkill race (real sandbox) at its finish, from
  its recording, held on the race screen.
- ``presenter.svg``: the long-essay race in presenter mode (``--big``), live,
  12.3 s in.
- ``race-80x24.svg``: the long-essay race, live, 12.3 s in, on an 80×24
  terminal (whatever ``--size`` says).

    cd /work/main && PYTHONPATH=. python screenshots/make_screenshots.py [--size 130x38] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from thunderdome.config import demo_backends  # noqa: E402
from thunderdome.race.tasks import load_task  # noqa: E402
from thunderdome.tui.app import make_app  # noqa: E402

SEED = 7
MID_RACE_S = 12.3


async def wait(pilot, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"make_screenshots: timed out waiting for {what}")
        await pilot.pause(0.05)


async def shoot_setup(size: tuple[int, int], out: Path, workdir: Path) -> None:
    os.chdir(workdir)  # no backends file here: the built-in sims are listed
    app = make_app(mode="setup", discover=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        app.save_screenshot(filename="setup.svg", path=str(out))
        await pilot.press("q")


async def shoot_long_race(size: tuple[int, int], out: Path, names: set[str], race_file: str = "race.svg") -> None:
    from thunderdome.tui.screens.race import RaceScreen
    from thunderdome.tui.screens.results import ResultsScreen

    app = make_app(mode="race", task=load_task("long-essay"), specs=demo_backends(), seed=SEED, results_delay=0.5)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        await wait(pilot, lambda: screen.now() >= MID_RACE_S or screen.failed is not None, 60, "mid-race")
        if screen.failed:
            raise SystemExit(f"make_screenshots: the race failed: {screen.failed}")
        if "race" in names:
            app.save_screenshot(filename=race_file, path=str(out))
            print(f"{race_file} at {screen.now():.2f} s", file=sys.stderr)
        if "results" in names:
            await wait(pilot, lambda: isinstance(app.screen, ResultsScreen), 240, "the results")
            await pilot.pause(0.3)
            app.save_screenshot(filename="results.svg", path=str(out))
        await pilot.press("q")


async def shoot_presenter(size: tuple[int, int], out: Path) -> None:
    from thunderdome.tui.screens.race import RaceScreen

    app = make_app(mode="race", task=load_task("long-essay"), specs=demo_backends(), seed=SEED, presenter=True)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        await wait(pilot, lambda: screen.now() >= MID_RACE_S or screen.failed is not None, 60, "mid-race")
        if screen.failed:
            raise SystemExit(f"make_screenshots: the race failed: {screen.failed}")
        app.save_screenshot(filename="presenter.svg", path=str(out))
        print(f"presenter.svg at {screen.now():.2f} s", file=sys.stderr)
        await pilot.press("q")


async def shoot_thunderdome(size: tuple[int, int], out: Path) -> None:
    from thunderdome.recording.replay import load_recording
    from thunderdome.tui.screens.results import ResultsScreen
    from thunderdome.sources.fixed import ListSource

    app = make_app(mode="race", task=load_task("sigkill"), specs=demo_backends(), seed=SEED, results_delay=0.1)
    async with app.run_test(size=size) as pilot:
        await wait(pilot, lambda: isinstance(app.screen, ResultsScreen), 120, "the sigkill race")
        status = app.screen.recording
        path = status.path if status is not None and status.complete else None
        await pilot.press("q")
    if not path:
        raise SystemExit("make_screenshots: the sigkill race was not recorded")
    events = load_recording(path).events  # the whole race, held on the race screen
    app = make_app(mode="race", task=load_task("sigkill"), specs=demo_backends(), results_delay=3600,
                   source_factory=lambda t, s: ListSource(events, live=True), clock=lambda: 0.0)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        app.save_screenshot(filename="thunderdome.svg", path=str(out))
        await pilot.press("q")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="130x38", help="terminal size WxH")
    parser.add_argument("--only", nargs="*", default=["setup", "race", "results", "thunderdome", "presenter", "race-80x24"])
    parser.add_argument("--out", default=str(HERE), help="folder for the SVGs")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = set(args.only)
    with tempfile.TemporaryDirectory(prefix="thunderdome-shots-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("THUNDERDOME_RECORDINGS", str(work / "recordings"))  # recorded races, named as usual
        if "setup" in names:
            await shoot_setup((width, height), out, work)
        if names & {"race", "results"}:
            await shoot_long_race((width, height), out, names)
        if "thunderdome" in names:
            await shoot_thunderdome((width, height), out)
        if "presenter" in names:
            await shoot_presenter((width, height), out)
        if "race-80x24" in names:
            await shoot_long_race((80, 24), out, {"race"}, "race-80x24.svg")
    for name in sorted(names):
        print(out / f"{name}.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
