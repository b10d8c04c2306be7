"""A sandbox's door to its gateway: one listening socket, handed over a Unix socket.

Both ends live here, standard library only. Run as a script by the
sandbox's own ``python3`` before the agent starts (``python3 door.py HOST
PORT SOCKET``), ``hand_over`` makes the listening TCP socket on
``HOST:PORT`` in the sandbox's own network namespace, hands it to the
gateway over the Unix socket ``SOCKET`` (``SCM_RIGHTS``), waits for ``ok``
and exits 0; on any failure it says why on stderr and exits 1, so the agent
never starts without its door. The door is in no data path: the agent's
connections are accepted, read and answered by the gateway itself, and the
socket still lives in the sandbox's namespace, so the agent reaches nothing
new.

Invariant: on the gateway's side ``take_door`` takes exactly one socket, and only one that is
a listening TCP socket bound to the address the gateway expects (the
sandbox's ``127.0.0.1:PORT``, in the sandbox's own network namespace);
anything else handed over is closed and refused (the sender hears ``no``),
and the wait goes on. The Unix socket is ``0600``, takes one hand-over and
is removed as soon as the door is taken, so nothing in the sandbox can use
it afterwards. The sender hears ``ok`` only once the caller accepts on the
socket (``opened``), so an agent started after it never meets a door
nobody answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable

HANDED = b"door"
"""The message the socket travels with."""
OPEN = b"ok"
"""The gateway's answer once it accepts on the socket."""
REFUSED = b"no"
WAIT_S = 10.0


def hand_over(host: str, port: int, path: str) -> str:
    """Bind and listen on ``host:port``, hand the socket to the gateway at
    ``path``; returns "" once the gateway took it, else the reason it did not."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(1024)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as door:
            door.settimeout(WAIT_S)
            door.connect(path)
            socket.send_fds(door, [HANDED], [listener.fileno()])
            answer = door.recv(16)
    except OSError as exc:
        return f"door: cannot hand {host}:{port} to the gateway at {path}: {exc.strerror or exc}"
    finally:
        listener.close()  # the gateway holds its own copy now
    return "" if answer == OPEN else f"door: the gateway refused {host}:{port} ({answer!r})"


def _check(fds: list[int], expected: tuple[str, int]) -> tuple[socket.socket | None, str]:
    """The one listening socket among ``fds`` (the rest closed), or why not."""
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None, f"{len(fds)} file descriptors handed over, not 1"
    try:
        sock = socket.socket(fileno=fds[0])
    except OSError:
        os.close(fds[0])
        return None, "what was handed over is not a socket"
    if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
        sock.close()
        return None, "what was handed over is not a TCP socket"
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) or sock.getsockname() != expected:
        sock.close()
        return None, f"the socket handed over is not listening on {expected[0]}:{expected[1]}"
    sock.setblocking(False)
    return sock, ""


async def _received(conn: socket.socket) -> tuple[bytes, list[int]]:
    loop = asyncio.get_running_loop()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(conn, 64, 4)
            return msg, fds
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(conn.fileno())


def bind_door(path: str) -> socket.socket:
    """The Unix socket a door is handed over on (``0600``; chown it to the sandbox's user)."""
    keeper = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    keeper.bind(path)
    os.chmod(path, 0o600)
    keeper.listen(4)
    keeper.setblocking(False)
    return keeper


async def take_door(keeper: socket.socket, path: str, expected: tuple[str, int],
                    opened: Callable[[socket.socket], Awaitable[None]], refused: Callable[[str], None]) -> None:
    """Wait at ``keeper`` until a sandbox hands over its listening socket on
    ``expected``; ``opened(sock)`` starts accepting on it, then the sender
    hears ``ok`` and ``keeper`` is closed and ``path`` removed.
    ``refused(reason)`` is told of each hand-over refused."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            conn, _ = await loop.sock_accept(keeper)
            with conn:
                conn.setblocking(False)
                try:
                    async with asyncio.timeout(WAIT_S):
                        msg, fds = await _received(conn)
                except (TimeoutError, OSError) as exc:
                    refused(f"no door handed over: {type(exc).__name__}")
                    continue
                sock, reason = _check(fds, expected) if msg == HANDED else (None, f"unexpected message {msg[:16]!r}")
                if sock is None:
                    refused(reason)
                    _answer(conn, REFUSED)
                    continue
                await opened(sock)
                _answer(conn, OPEN)
                return
    finally:
        keeper.close()
        try:
            os.unlink(path)
        except OSError:
            pass


def _answer(conn: socket.socket, word: bytes) -> None:
    try:
        conn.send(word)
    except OSError:
        pass  # the sender gave up waiting: it says so itself


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: door.py HOST PORT SOCKET", file=sys.stderr)
        return 2
    reason = hand_over(argv[0], int(argv[1]), argv[2])
    if reason:
        print(reason, file=sys.stderr)
        return 1
    return 0


__all__ = ["bind_door", "hand_over", "take_door"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
