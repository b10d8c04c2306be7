"""Queue vs prefill on a server that runs one request at a time.

Against the emulator with ``slots: 1`` (later requests wait in a FIFO queue),
which serves llama.cpp's ``/slots``, a Prometheus ``/metrics`` (llama.cpp's and
vLLM's gauges), llama.cpp ``timings`` and vLLM's per-request ``metrics``, over
real loopback HTTP: the lane that waited shows the wait as ``queue`` when the
server said so (vLLM ``queue_time_ms``) and as ``rest`` when it did not, and a
lane whose first token is late because it was queued is told so.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from _emulator import collect, emulator, request, sim_backend  # type: ignore[import-not-found]  # noqa: F401
from thunderdome.backends import queue_probe as qp
from thunderdome.output.export import export_results
from thunderdome.core.specs import Timeouts

ROOT = Path(__file__).resolve().parents[1]
LLAMA_SLOTS = [  # the shape llama-server 0.3.36's source gives: next_token is a one-item list
    {"id": 0, "id_task": 7, "n_ctx": 2048, "is_processing": True, "next_token": [{"has_next_token": True, "n_decoded": 12}]},
]


async def until_metrics_say(client: httpx2.AsyncClient, url: str, line: str) -> str:
    """The emulator's ``/metrics`` once it has ``line`` (bounded): the requests
    under test have reached the server's queue, whatever the machine's load."""
    for _ in range(300):
        text = (await client.get(f"{url}/metrics")).text
        if line in text.splitlines():
            return text
        await asyncio.sleep(0.01)
    raise AssertionError(f"/metrics never said {line!r}:\n{text}")


def test_slots_say_queued_only_when_every_busy_slot_is_someone_elses():
    assert qp.from_slots(LLAMA_SLOTS) == qp.Busy(1, "llama.cpp /slots")
    readme_shape = [{**LLAMA_SLOTS[0], "next_token": {"n_decoded": 3}}] * 2
    assert qp.from_slots(readme_shape) == qp.Busy(2, "llama.cpp /slots")
    in_prefill = [{**LLAMA_SLOTS[0], "next_token": [{"n_decoded": 0}]}]  # that may be this very request
    idle = [LLAMA_SLOTS[0], {"id": 1, "is_processing": False}]
    for said in (in_prefill, idle, [], {"slots": LLAMA_SLOTS}, ["junk"]):
        assert qp.from_slots(said) is None


def test_metrics_say_queued_when_a_request_is_deferred_or_waiting():
    llama = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 3\nllamacpp:requests_deferred 2\n"
    assert qp.from_metrics(llama, "m") == qp.Busy(3, "llama.cpp /metrics")
    assert qp.from_metrics(llama.replace("deferred 2", "deferred 0"), "m") is None
    vllm = ('vllm:num_requests_running{model_name="m"} 4.0\nvllm:num_requests_waiting{model_name="m"} 1.0\n'
            'vllm:num_requests_waiting{model_name="other"} 9.0\nvllm:num_requests_running{model_name="other"} 9.0\n')
    assert qp.from_metrics(vllm, "m") == qp.Busy(4, "vLLM /metrics")
    assert qp.from_metrics(vllm.replace("waiting{model_name=\"m\"} 1.0", "waiting{model_name=\"m\"} 0.0"), "m") is None
    assert qp.from_metrics("<html>no</html>", "m") is None


def test_the_wording_names_the_wait_the_count_and_the_source():
    assert qp.queued_reason(60.0, qp.Busy(1, "llama.cpp /slots")) == (
        "queued for 60 s: the server was busy with 1 other request (llama.cpp /slots)")
    assert qp.queued_reason(0.5, qp.Busy(3, "vLLM /metrics")).endswith("busy with 3 other requests (vLLM /metrics)")
    assert qp.origin("https://user@host:8080/v1") == "https://user@host:8080"


def _race(folder: Path, entries: list[dict]) -> dict:
    (folder / "backends.yaml").write_text("backends:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries))
    done = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", "backends.yaml", "--task", "long-essay",
         "--headless", "--json", "out.json", "--no-record", "--max-tokens", "20", "--time-scale", "0.2"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=folder,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "out.json").read_text())


def test_the_lane_that_waited_shows_its_queue_or_its_rest(tmp_path):
    said = {"slots": 1, "timings": True, "request_metrics": True}  # vLLM's queue_time_ms says it waited
    unsaid = {"slots": 1, "timings": True}  # llama.cpp's timings alone: prefill, and the rest unexplained
    results = _race(tmp_path, [
        {"name": "said-a", "kind": "sim", "profile": "cloud", "options": said},
        {"name": "said-b", "kind": "sim", "profile": "cloud", "options": said},
        {"name": "unsaid-a", "kind": "sim", "profile": "dgx-spark", "options": unsaid},
        {"name": "unsaid-b", "kind": "sim", "profile": "dgx-spark", "options": unsaid},
    ])
    lanes = {x["name"]: x for x in results["lanes"]}
    for pair in ("said", "unsaid"):
        first, second = sorted((lanes[f"{pair}-a"], lanes[f"{pair}-b"]), key=lambda x: x["ttft_s"])
        assert second["ttft_s"] > 1.5 * first["ttft_s"], (first, second)  # one slot: the second waited for the first
        waited = second["ttft_s"] - first["ttft_s"]
        part = "queue_s" if pair == "said" else "rest_s"
        assert second["ttft_split"][part] == pytest.approx(waited, rel=0.2), second["ttft_split"]
        assert second["ttft_split"]["prefill_s"] == pytest.approx(first["ttft_split"]["prefill_s"], rel=0.2)
        assert "queue_s" in second["ttft_split"] if pair == "said" else "queue_s" not in second["ttft_split"]
        # the exports carry it: a CSV column per part, a line in the Markdown
        row = next(r for r in csv.DictReader(io.StringIO(export_results(results, "csv"))) if r["lane"] == second["name"])
        assert float(row[f"ttft_{part}"]) == second["ttft_split"][part]
        words = f"{part[:-2]} {second['ttft_split'][part]:.3f}"
        assert f"- {second['name']}: TTFT {second['ttft_s']:.3f} s = " in export_results(results, "md")
        assert words in export_results(results, "md")


async def _hold_the_slot(url: str, body: dict, holding: asyncio.Event, release: asyncio.Event) -> None:
    async with httpx2.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            async for _ in response.aiter_bytes():
                holding.set()  # tokens flow: the slot is this request's
                if release.is_set():
                    break


async def test_a_first_token_timeout_while_queued_is_worded_as_queued(emulator):
    hog = {"model": "cloud", "stream": True, "messages": [{"role": "user", "content": "go"}],
           "thunderdome_sim": {"slots": 1, "tokens": 100_000, "time_scale": 0.05}}  # ~25 s unless released
    holding, release = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(_hold_the_slot(emulator.url, hog, holding, release))
    try:
        await asyncio.wait_for(holding.wait(), 10)
        backend = sim_backend(emulator.url, "openai", {"slots": 1}, model="cloud", timeouts=Timeouts(first_token=0.4))
        out = await collect(backend, request(max_tokens=8))
    finally:
        release.set()
        await task
    assert out.error is not None
    assert out.error.reason == "queued for 0.4 s: the server was busy with 1 other request (llama.cpp /slots)"
    assert [e.type for e in out.events] == ["request_sent"]  # it never got a head: llama.cpp answers when a slot takes it


async def test_a_late_first_token_on_a_server_without_a_queue_keeps_its_wording(emulator):
    backend = sim_backend(emulator.url, "openai", {"fault": "stall_before", "stall_s": 5.0}, model="cloud",
                          timeouts=Timeouts(first_token=0.3))
    out = await collect(backend, request(max_tokens=8))
    assert out.error is not None and out.error.reason == "no token within 0.3 s"


async def test_a_lane_in_its_own_prefill_is_not_told_it_was_queued(emulator):
    """It holds the only slot (0.9 s to its first token) while another request
    waits behind it: ``/slots`` shows the busy slot has decoded nothing, so it
    may be this one: no queue claimed (``/metrics`` alone would have)."""
    backend = sim_backend(emulator.url, "openai", {"slots": 1}, model="dgx-spark", timeouts=Timeouts(first_token=0.4))
    lane = asyncio.create_task(collect(backend, request(max_tokens=8)))
    behind = {"model": "dgx-spark", "stream": True, "messages": [{"role": "user", "content": "wait"}],
              "thunderdome_sim": {"slots": 1, "tokens": 2}}
    async with httpx2.AsyncClient(timeout=30) as client:
        await until_metrics_say(client, emulator.url, "llamacpp:requests_processing 1")  # the lane holds the slot
        waiting = asyncio.create_task(client.post(f"{emulator.url}/v1/chat/completions", json=behind))
        out = await lane
        await waiting
    assert out.error is not None and out.error.reason == "no token within 0.4 s"


async def test_the_emulator_serves_llama_cpp_and_vllm_gauges(emulator):
    body = {"model": "rtx4090-offload", "stream": True, "messages": [{"role": "user", "content": "hi"}],
            "thunderdome_sim": {"slots": 1, "tokens": 3}}
    async with httpx2.AsyncClient(timeout=30) as client:
        calls = [asyncio.create_task(client.post(f"{emulator.url}/v1/chat/completions", json=body)) for _ in range(3)]
        # all three in (rtx4090-offload: seconds to its first token, so the first is still in its prefill)
        metrics = await until_metrics_say(client, emulator.url, "llamacpp:requests_deferred 2")
        slots = (await client.get(f"{emulator.url}/slots?model=rtx4090-offload")).json()
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    assert qp.from_metrics(metrics, "rtx4090-offload") == qp.Busy(1, "llama.cpp /metrics")
    assert qp.from_metrics(metrics.replace("llamacpp:", "other:"), "rtx4090-offload") == qp.Busy(1, "vLLM /metrics")
    assert [s["is_processing"] for s in slots] == [True] and qp.from_slots(slots) is None  # still in its prefill


async def test_the_probe_asks_only_the_lanes_own_origin_with_what_it_already_sends(monkeypatch):
    from _emulator import RawServer, Seen  # type: ignore[import-not-found]
    from thunderdome.backends import make_backend
    from thunderdome.core.specs import BackendSpec

    key = "sk-queue-probe-0123456789abcdef"
    monkeypatch.setenv("QUEUE_PROBE_KEY", key)
    busy = json.dumps(LLAMA_SLOTS * 2).encode()

    def respond(seen: Seen) -> list:
        if seen.path.startswith("/slots"):
            return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(busy) + busy]
        return [5.0]  # the chat request: no answer in time

    async with RawServer(respond) as server:
        spec = BackendSpec(name="lane", kind="openai", url=f"{server.url}/v1", model="my/model",
                           api_key_env="QUEUE_PROBE_KEY", timeouts=Timeouts(first_token=0.3))
        out = await collect(make_backend(spec), request(max_tokens=4))
    assert out.error is not None
    assert out.error.reason == "queued for 0.3 s: the server was busy with 2 other requests (llama.cpp /slots)"
    chat, probe = server.seen
    assert (chat.method, chat.path) == ("POST", "/v1/chat/completions")
    assert (probe.method, probe.path) == ("GET", "/slots?model=my%2Fmodel")  # /slots answered: no /metrics
    assert probe.headers["authorization"] == chat.headers["authorization"] == f"Bearer {key}"
    assert key not in out.error.reason
