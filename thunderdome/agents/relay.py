"""The relay inside an agent's sandbox: its loopback port to its gateway's Unix socket.

Invariant: standard library only, run as a script by the sandbox's own
``python3`` (``python3 relay.py HOST PORT SOCKET``): it binds ``HOST:PORT``
first and only then detaches (the parent exits 0), so the agent started
after it never finds the port closed (``--foreground``: it does not detach,
and says ``listening`` on stdout once bound). Each accepted connection is spliced
byte for byte to a new connection on ``SOCKET``; nothing is read, kept or
changed. It lives only as long as the sandbox's PID namespace.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def _serve(listener: socket.socket, path: str) -> None:
    async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(path)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(splice, sock=listener)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    foreground = "--foreground" in argv
    argv = [arg for arg in argv if arg != "--foreground"]
    if len(argv) != 3:
        print("usage: relay.py [--foreground] HOST PORT SOCKET", file=sys.stderr)
        return 2
    host, port, path = argv[0], int(argv[1]), argv[2]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    if foreground:
        print("listening", flush=True)
        asyncio.run(_serve(listener, path))
        return 0
    if os.fork():
        return 0  # listening already: the agent may start
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    asyncio.run(_serve(listener, path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
