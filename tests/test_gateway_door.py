"""A sandbox's door (``gateway/door.py``): the real script hands its listening socket to a real gateway.

The script runs as the sandbox runs it (``python3 -I door.py HOST PORT
SOCKET``, a separate process) against a gateway on this test's loop; the
gateway then answers HTTP on that socket itself. A hand-over of anything
but the promised listening socket is refused, and the hand-over socket is
gone once the door is taken.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx2

from test_gateway import Clock, recorder  # noqa: F401  # type: ignore[import-not-found]  # the fixture
from thunderdome.backends import make_backend
from thunderdome.core.events import Event, Notice
from thunderdome.gateway import Gateway, Upstream
from thunderdome.gateway.door import __file__ as door_script
from thunderdome.core.specs import BackendSpec


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _door(port: int, path: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-I", door_script, "127.0.0.1", str(port), path,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode()


async def test_the_door_script_hands_its_port_to_the_gateway_which_answers_on_it_itself(recorder, tmp_path):  # noqa: F811
    backend = make_backend(BackendSpec(name="hosted", kind="openai", url=recorder.url, model="m"))
    gateway = Gateway("hosted", Upstream.of(backend), [].append, Clock())
    port, path = _free_port(), str(tmp_path / "gateway.sock")
    try:
        assert gateway.listen_door(path, "127.0.0.1", port) == path
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        code, err = await _door(port, path)
        assert (code, err) == (0, "")  # exited: no process stays between the agent and its gateway
        assert not os.path.exists(path)  # one hand-over, then the socket is gone
        async with httpx2.AsyncClient(timeout=10) as client:
            first = await client.get(f"http://127.0.0.1:{port}/v1/models")
            second = await client.get(f"http://127.0.0.1:{port}/v1/models")  # kept alive, same door
    finally:
        await gateway.aclose()
        await backend.aclose()
    assert first.status_code == second.status_code == 200 and first.json()["data"][0]["id"] == "m"
    assert [r.path for r in gateway.relayed] == ["/v1/models", "/v1/models"]


async def test_a_hand_over_of_anything_but_the_promised_listening_socket_is_refused(recorder, tmp_path):  # noqa: F811
    backend = make_backend(BackendSpec(name="hosted", kind="openai", url=recorder.url, model="m"))
    events: list[Event] = []
    gateway = Gateway("hosted", Upstream.of(backend), events.append, Clock())
    promised, other = _free_port(), _free_port()
    path = str(tmp_path / "gateway.sock")
    try:
        gateway.listen_door(path, "127.0.0.1", promised)
        code, err = await _door(other, path)  # a listening socket, on another port
        assert code == 1 and err.startswith(f"door: the gateway refused 127.0.0.1:{other}")
        with socket.socket(socket.AF_UNIX) as wrong, socket.socket(socket.AF_UNIX) as not_tcp:
            wrong.connect(path)
            socket.send_fds(wrong, [b"door"], [not_tcp.fileno()])
            assert await asyncio.to_thread(wrong.recv, 16) == b"no"
        assert os.path.exists(path)  # still waiting for the real door
        code, err = await _door(promised, path)
        assert (code, err) == (0, "")
        async with httpx2.AsyncClient(timeout=10) as client:
            assert (await client.get(f"http://127.0.0.1:{promised}/v1/models")).status_code == 200
    finally:
        await gateway.aclose()
        await backend.aclose()
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert notes == [f"gateway: door refused: the socket handed over is not listening on 127.0.0.1:{promised}",
                     "gateway: door refused: what was handed over is not a TCP socket"]
