"""What servers say about where a turn's time to first token went.

Invariant: only numbers the server actually sent become fields (a missing,
negative, non-finite or mistyped value is None, never 0), converted to
seconds and tokens; ``StreamParser.server_timings`` emits one
``ServerTimings`` per frame that said something (the reducer keeps each
field's latest value), and nothing at all when a server said nothing. Definitions, per server:

- llama.cpp ``timings``: ``prompt_ms`` is prefill; ``cache_n`` prompt tokens
  reused from the slot's cache; ``prompt_n`` the tokens processed, so the
  prompt is ``prompt_n + cache_n``;
- vLLM's per-request ``metrics`` (``--enable-per-request-metrics``, on the
  usage chunk or the final response): ``queue_time_ms`` is the queue,
  ``time_to_first_token_ms`` (from being scheduled to the first token) prefill;
- Ollama's last line: ``load_duration`` (ns, loading the model),
  ``prompt_eval_duration`` (ns, prefill), ``prompt_eval_count``;
- OpenAI usage: ``prompt_tokens_details.cached_tokens`` of ``prompt_tokens``
  (Responses: ``input_tokens_details.cached_tokens`` of ``input_tokens``);
- Anthropic usage: ``cache_read_input_tokens``; the prompt is
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
"""

from __future__ import annotations

import math
from typing import Any

Fields = dict[str, Any]


def _seconds(value: Any, per_second: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value / per_second


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _details(usage: Any, key: str) -> Any:
    details = usage.get(key) if isinstance(usage, dict) else None
    return details.get("cached_tokens") if isinstance(details, dict) else None


def from_llama_timings(timings: Any) -> Fields:
    if not isinstance(timings, dict):
        return {}
    cached, processed = _count(timings.get("cache_n")), _count(timings.get("prompt_n"))
    prompt = None if processed is None else processed + (cached or 0)
    return {"prefill_s": _seconds(timings.get("prompt_ms"), 1e3), "cached_tokens": cached, "prompt_tokens": prompt}


def from_vllm_metrics(metrics: Any) -> Fields:
    if not isinstance(metrics, dict):
        return {}
    return {"queue_s": _seconds(metrics.get("queue_time_ms"), 1e3), "prefill_s": _seconds(metrics.get("time_to_first_token_ms"), 1e3)}


def from_ollama_done(obj: dict[str, Any]) -> Fields:
    return {
        "load_s": _seconds(obj.get("load_duration"), 1e9),
        "prefill_s": _seconds(obj.get("prompt_eval_duration"), 1e9),
        "prompt_tokens": _count(obj.get("prompt_eval_count")),
    }


def from_openai_usage(usage: Any) -> Fields:
    if not isinstance(usage, dict):
        return {}
    return {"cached_tokens": _count(_details(usage, "prompt_tokens_details")), "prompt_tokens": _count(usage.get("prompt_tokens"))}


def from_responses_usage(usage: Any) -> Fields:
    if not isinstance(usage, dict):
        return {}
    return {"cached_tokens": _count(_details(usage, "input_tokens_details")), "prompt_tokens": _count(usage.get("input_tokens"))}


def from_anthropic_usage(usage: Any) -> Fields:
    if not isinstance(usage, dict):
        return {}
    read, made, fresh = (_count(usage.get(k)) for k in ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens"))
    prompt = None if fresh is None else fresh + (read or 0) + (made or 0)
    return {"cached_tokens": read, "prompt_tokens": prompt}


def merged(*parts: Fields) -> Fields:
    """The first part, with what it left None filled from the next ones, in order."""
    out: Fields = {}
    for part in reversed(parts):
        out.update((k, v) for k, v in part.items() if v is not None)
    return out
