"""Races against the real llama.cpp ``llama-server`` (marker ``real_server``).

Invariant: every figure a lane reports against this server agrees with what
the server itself measured (its ``print_timing`` log lines and the ``timings``
it sends) within 10 %, and every lane's token count names its true source.
The binary and the SmolLM2-135M GGUF come from ``.ci/llama_server.sh``'s cache;
without them the tier fails under CI (``CI=true``) and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from thunderdome.specs import BACKEND_KINDS

pytestmark = pytest.mark.real_server

CACHE = Path(os.environ.get("THUNDERDOME_CACHE", "/var/cache/thunderdome"))
BINARY = CACHE / "llama-server-0.3.36" / "llama-server"
MODEL_DIR = CACHE / "smollm2-0.1.2"
MAX_TOKENS = 64
TIMING = re.compile(r"id +(\d+) \| task (\d+) \| +(prompt eval|eval) time = +([\d.]+) ms / +(\d+) tokens")


@dataclass
class Server:
    url: str
    log: Path

    def timings_since(self, offset: int) -> list[dict[str, float]]:
        """The server's own per-request figures logged after byte ``offset``."""
        by_task: dict[str, dict[str, float]] = {}
        for match in TIMING.finditer(self.log.read_bytes()[offset:].decode(errors="replace")):
            _, task, what, ms, n = match.groups()
            entry = by_task.setdefault(task, {})
            entry["prompt_s" if what == "prompt eval" else "eval_s"] = float(ms) / 1000
            if what == "eval":
                entry["tps"] = int(n) / (float(ms) / 1000)
        return [entry for entry in by_task.values() if "tps" in entry]

    def log_size(self) -> int:
        return self.log.stat().st_size


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    models = sorted(MODEL_DIR.glob("*.gguf"))
    if not BINARY.is_file() or not models:
        reason = f"no llama-server or GGUF under {CACHE}: run .ci/llama_server.sh first"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        # -t 1: two spinning threads on two shared cores collapse to 0.3 tok/s.
        # --no-cache-prompt: every race pays its prompt, so TTFT is comparable.
        proc = subprocess.Popen(
            [str(BINARY), "-m", str(models[0]), "--jinja", "-t", "1", "--parallel", "4",
             "-c", "4096", "--no-cache-prompt", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # /v1/models answers while /health still says 503 "Loading model"
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama-server not healthy after 60 s"
            time.sleep(0.2)
        yield Server(url, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _race(server: Server, tmp_path: Path, kinds: list[str], task: str = "long-essay") -> list[dict]:
    lines = ["backends:"]
    for i, kind in enumerate(kinds):
        url = f"{server.url}/v1" if kind in ("openai", "responses") else server.url
        lines += [f"  - name: {kind}-{i}", f"    kind: {kind}", f"    url: {url}", "    model: smollm2"]
    backends = tmp_path / "backends.yaml"
    backends.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", task,
         "--headless", "--json", str(out), "--max-tokens", str(MAX_TOKENS), "--no-record"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())["lanes"]


def _near(value: float | None, truth: float) -> bool:
    return value is not None and abs(value - truth) <= 0.10 * truth


def _solo(server: Server, tmp_path: Path, kind: str) -> tuple[dict, dict[str, float]]:
    offset = server.log_size()
    (lane,) = _race(server, tmp_path, [kind])
    (truth,) = server.timings_since(offset)
    assert lane["status"] in ("winner", "finished"), lane
    assert lane["tokens"] == MAX_TOKENS and lane["tokens_source"] == "usage"
    assert _near(lane["output_tps"], truth["tps"]), (lane, truth)
    assert _near(lane["ttft_s"], truth["prompt_s"]), (lane, truth)
    return lane, truth


def test_openai_lane_agrees_with_the_servers_timings(llama_server: Server, tmp_path: Path) -> None:
    lane, truth = _solo(llama_server, tmp_path, "openai")
    assert _near(lane["server_tps"], truth["tps"])  # the usage chunk's `timings`
    assert lane["finish_reason"] == "length"
    # TTFT decomposed by the same `timings`: prompt_ms is the prefill the server logged;
    # --no-cache-prompt, so cache_n is 0: a cold start, not marked warm
    assert _near(lane["ttft_split"]["prefill_s"], truth["prompt_s"]), lane["ttft_split"]
    assert lane["cached_tokens"] == 0 and lane["prompt_cached"] is False


def test_anthropic_lane_agrees_with_the_servers_timings(llama_server: Server, tmp_path: Path) -> None:
    lane, _ = _solo(llama_server, tmp_path, "anthropic")
    assert lane["server_tps"] is None  # /v1/messages sends no timings
    assert lane["finish_reason"] == "max_tokens"


@pytest.mark.skipif("responses" not in BACKEND_KINDS,
                    reason="no `responses` client kind yet (branch toolclients)")
def test_responses_lane_agrees_with_the_servers_timings(llama_server: Server, tmp_path: Path) -> None:
    _solo(llama_server, tmp_path, "responses")


def test_first_chunk_is_role_only_and_usage_carries_timings(llama_server: Server) -> None:
    body = {"model": "x", "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.stream("POST", f"{llama_server.url}/v1/chat/completions", json=body, timeout=60) as resp:
        datas = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    chunks = [json.loads(d) for d in datas if d != "[DONE]"]
    assert datas[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4
    assert last["timings"]["predicted_n"] == 4


@pytest.mark.parametrize("lanes", [2, 4])
def test_concurrent_lanes_each_match_a_server_measurement(
    llama_server: Server, tmp_path: Path, lanes: int
) -> None:
    offset = llama_server.log_size()
    kinds = ["openai", "anthropic"] * (lanes // 2)
    results = _race(llama_server, tmp_path, kinds)
    truths = llama_server.timings_since(offset)
    assert len(truths) == lanes
    for lane in results:
        assert lane["status"] in ("winner", "finished"), lane
        assert lane["tokens"] == MAX_TOKENS and lane["tokens_source"] == "usage"
        assert any(_near(lane["output_tps"], t["tps"]) for t in truths), (lane, truths)


def test_thunderdome_task_ends_with_verdicts(llama_server: Server, tmp_path: Path) -> None:
    results = _race(llama_server, tmp_path, ["openai", "anthropic"], task="hello-file")
    assert all(lane["verdict"] and lane["status"] for lane in results), results
    assert all(lane["error"] is None or "Traceback" not in lane["error"] for lane in results)
