"""Ways to run the emulator: in a thread, in a child process, or as a command.

Invariant: a handle's ``stop()`` is idempotent and leaves nothing running; a
child process never outlives the process that spawned it (it polls its
parent's pid, which unlike PR_SET_PDEATHSIG is not tied to the spawning
*thread*). The child announces itself with exactly one stdout line,
``listening on http://HOST:PORT``, and prints nothing else to stdout. Both
run the server on a precise-timer loop (``precise_loop``), so tokens leave
within tens of microseconds of their due times, not up to a millisecond late.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from thunderdome.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from thunderdome.sim.precise_loop import new_precise_loop, tighten_timer_slack
from thunderdome.sim.server import EmulatorServer
from thunderdome.sim.task_replies import TaskReplies
from thunderdome.core.stop_signals import StopSignals
from thunderdome.core.visible import visible_line

STARTUP_TIMEOUT_S = 20.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class EmulatorHandle:
    """A running emulator somewhere else (thread or process)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fetch_log(self, tag: str | None = None) -> list[dict[str, Any]]:
        """The server's request records (GET /sim/log), optionally for one tag."""
        import httpx2  # only here: the emulator process itself never needs a client

        params = {"id": tag} if tag else None
        resp = httpx2.get(f"{self.url}/sim/log", params=params, timeout=10.0)
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThreadEmulator(EmulatorHandle):
    """The emulator on its own event loop in a daemon thread."""

    def __init__(
        self, server: EmulatorServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        super().__init__(server.host, server.port)
        self.server = server
        self._loop = loop
        self._thread = thread

    @property
    def log(self) -> list[dict[str, Any]]:
        """A copy of the records, taken on the server's own loop."""
        return asyncio.run_coroutine_threadsafe(_copy_log(self.server), self._loop).result(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


async def _copy_log(server: EmulatorServer) -> list[dict[str, Any]]:
    return server.log


def start_emulator_thread(**kw: Any) -> ThreadEmulator:
    """Start ``EmulatorServer(**kw)`` on a fresh precise-timer loop in a daemon thread."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        tighten_timer_slack()
        loop = new_precise_loop()
        asyncio.set_event_loop(loop)
        server = EmulatorServer(**kw)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            ready.set()
            loop.close()
            return
        box["server"], box["loop"] = server, loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            loop.close()

    thread = threading.Thread(target=main, name="thunderdome-sim", daemon=True)
    thread.start()
    if not ready.wait(STARTUP_TIMEOUT_S):
        raise RuntimeError("the emulator thread did not start")
    if "error" in box:
        raise RuntimeError(f"the emulator could not start: {box['error']}") from box["error"]
    return ThreadEmulator(box["server"], box["loop"], thread)


class ProcessEmulator(EmulatorHandle):
    """The emulator in a child process (no GIL shared with the caller)."""

    def __init__(self, proc: subprocess.Popen[bytes], host: str, port: int) -> None:
        super().__init__(host, port)
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()


def _read_announce(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The child's first stdout line, or '' on timeout / early exit."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            piece = os.read(fd, 4096)
            if not piece:
                return ""
            buf += piece
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def spawn_emulator_process(
    time_scale: float = 1.0, host: str = "127.0.0.1", replies: Mapping[str, str] | None = None
) -> ProcessEmulator:
    """Run ``python -m thunderdome.sim --port 0`` and wait for its port."""
    args = [sys.executable, "-m", "thunderdome.sim", "--host", host, "--port", "0"]
    args += ["--time-scale", repr(float(time_scale)), "--parent-pid", str(os.getpid())]
    replies_file = None
    if replies:
        fd, replies_file = tempfile.mkstemp(prefix="thunderdome-sim-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(replies), fh)
        args += ["--replies", replies_file]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    errors = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, env=env
        )
        line = _read_announce(proc, STARTUP_TIMEOUT_S)
    finally:
        if replies_file:
            os.unlink(replies_file)
    prefix = "listening on "
    if not line.startswith(prefix):
        ProcessEmulator(proc, host, 0).stop()
        errors.seek(0)
        detail = errors.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        errors.close()
        raise RuntimeError(f"the emulator process did not start: {detail[0]}")
    errors.close()
    port = int(line[len(prefix) :].rsplit(":", 1)[1])
    handle = ProcessEmulator(proc, host, port)
    atexit.register(handle.stop)
    return handle


# -- the command ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="thunderdome sim serve",
        description="Serve the LLM backend emulator: POST /v1/chat/completions, /v1/responses, "
        "/api/chat and /v1/messages (tool calls included); GET /v1/models, /api/tags, /api/version.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every delay (default 1.0)")
    p.add_argument("--replies", help="JSON file: {substring of the user message: reply text}")
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    return p


async def _serve(args: argparse.Namespace, replies: dict[str, str], task_replies: TaskReplies | None) -> None:
    server = EmulatorServer(args.host, args.port, args.time_scale, replies, task_replies)
    await server.start()
    # Start-up objects live as long as the process: keep them out of the
    # collector's full passes (~4 ms each here), which would stall every stream.
    gc.collect()
    gc.freeze()
    print(f"listening on {visible_line(server.url)}", flush=True)
    done = asyncio.Event()
    if args.parent_pid:
        # A race's emulator: Ctrl-C in the terminal reaches the whole process
        # group, but the race decides when to stop (it stops us with SIGTERM,
        # and we also leave when the parent is gone). Keep serving.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    signals = StopSignals([signal.SIGTERM] + ([] if args.parent_pid else [signal.SIGINT]), done.set)
    signals.install()
    try:
        while not done.is_set():
            if args.parent_pid and os.getppid() != args.parent_pid:
                break
            try:
                await asyncio.wait_for(done.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        await server.stop()
    finally:
        signals.uninstall()


def _say(message: str) -> None:
    """``thunderdome sim serve: MESSAGE`` on stderr, on one visible line (a host or path can hold escapes)."""
    print(f"thunderdome sim serve: {visible_line(message)}", file=sys.stderr)


def serve_main(argv: list[str] | None = None, task_replies: TaskReplies | None = None) -> int:
    """``thunderdome sim serve``: serve until SIGTERM / Ctrl-C. Exit 2 on bad
    usage. ``task_replies``: task prompts answered with the task's reference."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or EXIT_OK)
    replies: dict[str, str] = {}
    if args.replies:
        try:
            replies = json.loads(Path(args.replies).read_text(encoding="utf-8"))
            if not isinstance(replies, dict) or not all(isinstance(v, str) for v in replies.values()):
                raise ValueError("expected a JSON object of strings")
        except (OSError, ValueError) as exc:
            _say(f"bad --replies file: {exc}")
            return EXIT_USAGE
    if args.time_scale < 0:
        _say("--time-scale must be >= 0")
        return EXIT_USAGE
    tighten_timer_slack()
    try:
        with asyncio.Runner(loop_factory=new_precise_loop) as runner:
            runner.run(_serve(args, replies, task_replies))
    except OSError as exc:
        _say(f"cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    return EXIT_OK


__all__ = [
    "EmulatorHandle",
    "EmulatorServer",
    "ProcessEmulator",
    "ThreadEmulator",
    "serve_main",
    "spawn_emulator_process",
    "start_emulator_thread",
]
