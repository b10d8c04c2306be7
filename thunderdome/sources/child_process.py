"""A race in a child process, feeding the UI over a pipe.

Invariant: the race's event loop and its timestamps live in another process,
so nothing the UI does (rendering, layout, the GIL) can delay a token's stamp;
the child's loop only appends to a ``BatchQueue`` (a writer thread pickles
the events by their fields and sends them in bursts of a few ms), so a slow
reader can never block the race either, and the sending takes the loop's GIL
once per burst. The parent side
is a ``Source`` like the others: events reach ``on_event`` from a reader
thread, and the recording's status travels over the same pipe, in order with
the events, into ``recording``.

``stop()`` asks the child to cancel its race (lanes end with "race
interrupted", sandboxes and the emulator are closed by the race itself),
waits, and only then terminates it. If the parent dies, the child sees its
control pipe close and cancels the race the same way.

Measured by ``benchmarks/tui_ttft_fidelity.py`` (see its figures).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import operator
import os
import pickle
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Awaitable, Callable

from thunderdome.backends.poll_stamps import run_on_race_loop
from thunderdome.core.batch_queue import BatchQueue
from thunderdome.core.errors import EXIT_FAILED, EXIT_OK
from thunderdome.core.events import Event
from thunderdome.sources.base import OnEvent, RecordingStatus, ReplayControls
from thunderdome.sources.recorded_race import record_race
from thunderdome.core.specs import BackendSpec, TaskSpec

ChildSink = Callable[[Event | RecordingStatus], None]
"""The child's sink: events reach the parent's ``on_event``; a recording
status becomes the parent's ``recording``."""
ChildMain = Callable[..., Awaitable[Any]]
"""``async def main(sink, *args) -> picklable``: runs in the child with a
``ChildSink``; the return value becomes the parent's ``result``."""


SEND_GATHER_S = 0.004
"""Seconds the child lets events gather before it pickles and sends them: a
few ms on a 50 ms frame, and the sending thread takes the GIL once per
burst instead of once per token."""


class _EventPickler(pickle.Pickler):
    """Pickles an event as ``cls(*fields)`` (what ``Connection.recv`` loads
    as any pickle): the dataclass default, a ``__getstate__`` that walks
    ``dataclasses.fields`` per object, costs about three times as much, on
    the GIL the race's loop needs."""

    _fields: dict[type, tuple[int, Callable[[Any], Any]]] = {}
    """Per class: its number of fields, and one ``attrgetter`` of them all."""

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, Event):
            return NotImplemented
        cls = type(obj)
        fields = self._fields.get(cls)
        if fields is None:
            names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            fields = self._fields[cls] = (len(names), operator.attrgetter(*names))
        count, get = fields
        return cls, get(obj) if count > 1 else (get(obj),)


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _EventPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _child(main: ChildMain, args: tuple[Any, ...], events: Any, control: Any) -> None:
    """The child process: run ``main`` with a non-blocking sink."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    outbox: BatchQueue[Event | RecordingStatus] = BatchQueue(SEND_GATHER_S)

    def writer() -> None:
        for batch in outbox.batches():
            try:
                events.send_bytes(_dumps(("events", batch)))
            except (OSError, EOFError):  # the parent is gone
                return

    sink = outbox.put
    send_thread = threading.Thread(target=writer, name="race-events-out", daemon=True)
    send_thread.start()
    result: Any = None
    error: str | None = None

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()

        def listen() -> None:
            try:
                control.recv()  # "stop", or EOF when the parent dies
            except (EOFError, OSError):
                pass
            if me is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(me.cancel)
                except RuntimeError:
                    pass

        threading.Thread(target=listen, name="race-control-in", daemon=True).start()
        return await main(sink, *args)

    try:
        result = run_on_race_loop(run())
    except asyncio.CancelledError:
        error = None
    except BaseException as exc:  # reported to the parent as one line
        error = f"{type(exc).__name__}: {exc}"
    finally:
        outbox.close()
        send_thread.join(10)
        try:
            if error:
                events.send(("error", error))
            events.send(("done", result))
        except (OSError, EOFError):
            pass
        events.close()


class ProcessSource:
    """Runs ``main(sink, *args)`` in a spawned child process."""

    def __init__(self, main: ChildMain, *args: Any, recording: RecordingStatus | None = None) -> None:
        self.main = main
        self.args = args
        self.recording = recording
        self.controls: ReplayControls | None = None
        self.done = threading.Event()
        self.error: str | None = None
        self.result: Any = None
        self._proc: Any = None
        self._events: Any = None
        self._control: Any = None
        self._reader: threading.Thread | None = None

    def start(self, on_event: OnEvent) -> None:
        """Spawn ``python -m thunderdome.sources.child_process`` (a fresh
        interpreter: no fork of a threaded UI, no re-import of the caller's
        main module) with two pipes: events out, control in. Raises (before
        spawning anything) if ``main`` or its arguments cannot be pickled."""
        payload = pickle.dumps((self.main, self.args))
        events_r, events_w = os.pipe()
        control_r, control_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "thunderdome.sources.child_process", str(events_w), str(control_r)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # never onto the UI's terminal: errors come as messages
                pass_fds=(events_w, control_r),
                env=env,
                start_new_session=True,  # the terminal's Ctrl+C is the UI's to handle
            )
        finally:
            os.close(events_w)
            os.close(control_r)
        assert self._proc.stdin is not None
        self._proc.stdin.write(payload)
        self._proc.stdin.close()
        self._events, self._control = Connection(events_r, writable=False), Connection(control_w, readable=False)
        self._reader = threading.Thread(target=self._read, args=(on_event,), name="race-events-in", daemon=True)
        self._reader.start()

    def _read(self, on_event: OnEvent) -> None:
        try:
            while True:
                kind, payload = self._events.recv()
                if kind == "events":
                    for item in payload:
                        if isinstance(item, RecordingStatus):
                            self.recording = item
                        else:
                            on_event(item)
                elif kind == "error":
                    self.error = payload
                elif kind == "done":
                    self.result = payload
                    break
        except (EOFError, OSError):
            if self.error is None:
                self.error = "the race process ended unexpectedly"
        finally:
            self.done.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the race (gracefully, then by force) and wait for the child."""
        proc = self._proc
        if proc is None:
            self.done.set()
            return
        if proc.poll() is None:
            try:
                self._control.send("stop")
            except (OSError, EOFError, ValueError):
                pass
            _wait(proc, timeout)
        if proc.poll() is None:
            proc.terminate()
            _wait(proc, 2)
        if proc.poll() is None:
            proc.kill()
            _wait(proc, 2)
        if self._reader is not None:
            self._reader.join(2)
        self.done.set()
        try:
            self._control.close()
        except (OSError, AttributeError):
            pass


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


async def race_in_child(
    sink: ChildSink,
    task: TaskSpec,
    specs: list[BackendSpec],
    record_path: str | None,
    run_kwargs: dict[str, Any],
) -> None:
    """Child main of a live race: ``record_race``, its recording status sent along."""
    await record_race(task, specs, [sink], record_path=record_path, on_recording=sink, **run_kwargs)


def child_race_source(
    task: TaskSpec, specs: list[BackendSpec], *, record_path: str | Path | None = None, **run_kwargs: Any
) -> ProcessSource:
    """A live race (as ``LiveSource`` runs it) in a child process."""
    path = str(record_path) if record_path else None
    kwargs = {k: v for k, v in run_kwargs.items() if v is not None}
    return ProcessSource(
        race_in_child, task, list(specs), path, kwargs, recording=RecordingStatus(path) if path else None
    )


def _child_entry(argv: list[str]) -> int:
    events = Connection(int(argv[0]), readable=False)
    control = Connection(int(argv[1]), writable=False)
    try:
        main, args = pickle.loads(sys.stdin.buffer.read())
    except Exception as exc:  # e.g. a main that only exists in the parent's __main__
        events.send(("error", f"race process: cannot load its task: {type(exc).__name__}: {exc}"))
        events.send(("done", None))
        return EXIT_FAILED
    _child(main, args, events, control)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(_child_entry(sys.argv[1:]))
