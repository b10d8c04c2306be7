"""Failures as one line: what a person reads when a lane ends in error.

Invariant: every function here returns (or builds a ``BackendError`` with) a
single line, cut to a readable length, that names what failed and where
(``connection refused at 127.0.0.1:8080``, ``HTTP 429 Too Many Requests,
retry after 20 s: rate limited``). Text from the server or a URL is redacted
(``thunderdome.core.redact``: known keys, URL credentials) *before* it is cut, so
no piece of a key survives a cut, and made visible (``thunderdome.core.visible``),
so no escape sequence a server sends reaches a terminal. Nothing here sees
request headers.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import email.utils
import errno
import http
import json
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx2

from thunderdome.backends.base import BackendError
from thunderdome.core.redact import redact
from thunderdome.core.specs import Timeouts
from thunderdome.core.visible import visible_line

ERROR_BODY_LIMIT = 8192
"""Bytes of an error response read for its message."""


def secs(value: float) -> str:
    """``60.0`` -> ``60``, ``0.3`` -> ``0.3``: seconds as people write them."""
    return f"{value:g}"


def one_line(text: str, limit: int = 160) -> str:
    """Redact, collapse whitespace, make controls visible, then cut to ``limit`` characters."""
    return visible_line(" ".join(redact(str(text)).split()), limit)


def host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _os_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError):
            if isinstance(cur, (socket.gaierror, ConnectionRefusedError)) or cur.errno:
                return cur
        cur = cur.__cause__ or cur.__context__
    return None


def transport_error(exc: httpx2.HTTPError, url: str, timeouts: Timeouts) -> BackendError:
    """A failure before the response headers arrived."""
    where = host_port(url)
    if isinstance(exc, (httpx2.UnsupportedProtocol, httpx2.InvalidURL)):
        return BackendError(f"invalid url {one_line(repr(url), 120)}: {one_line(str(exc), 80)}")
    if isinstance(exc, httpx2.ConnectTimeout):
        return BackendError(f"connect timeout: no connection to {where} within {secs(timeouts.connect)} s")
    if isinstance(exc, httpx2.ConnectError):
        cause = _os_error(exc)
        if isinstance(cause, socket.gaierror):
            return BackendError(f"DNS failure: cannot resolve host {urlsplit(url).hostname}")
        if isinstance(cause, ConnectionRefusedError) or (cause is not None and cause.errno == errno.ECONNREFUSED):
            return BackendError(f"connection refused at {where}")
        if cause is not None and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return BackendError(f"host unreachable: {where}")
        return BackendError(f"cannot connect to {where}: {one_line(str(exc), 80)}")
    if isinstance(exc, httpx2.RemoteProtocolError):
        return BackendError(f"server at {where} closed the connection without a response")
    if isinstance(exc, httpx2.TimeoutException):
        return BackendError(f"timeout talking to {where}")
    return BackendError(f"request to {where} failed: {type(exc).__name__} {one_line(str(exc), 80)}".rstrip())


def error_message(obj: Any, *, with_type: bool) -> str:
    """The human part of an error object (OpenAI, Anthropic, Ollama, FastAPI
    shapes). ``with_type``: prefix the error type (``overloaded_error: ...``)."""
    if isinstance(obj, str):
        return one_line(obj)
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, str) and err:
            return one_line(err)
        if isinstance(err, dict) and err:
            msg = err.get("message") or err.get("msg") or ""
            if not isinstance(msg, str):
                msg = json.dumps(msg)
            kind = err.get("type") or err.get("code")
            if with_type and isinstance(kind, str) and kind and msg:
                return one_line(f"{kind}: {msg}")
            return one_line(msg or str(kind or json.dumps(err)))
        for key in ("message", "detail", "msg"):
            value = obj.get(key)
            if isinstance(value, str) and value:
                return one_line(value)
            if value:
                return one_line(json.dumps(value))
    return one_line(json.dumps(obj))


def retry_after(value: str | None, now: _dt.datetime | None = None) -> str | None:
    """``Retry-After`` as ``20 s`` (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return f"{int(value)} s"
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return one_line(value, 40)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return f"{max(0, round((when - now).total_seconds()))} s"


def body_message(body: bytes, content_type: str) -> str:
    """A short snippet of what an error body says."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        return error_message(json.loads(text), with_type=False)
    except ValueError:
        pass
    if "html" in content_type or text.lstrip().startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    return one_line(text)


async def read_some(response: httpx2.Response, limit: int = ERROR_BODY_LIMIT, wait: float = 5.0) -> bytes:
    """Up to ``limit`` bytes of the body, waiting at most ``wait`` seconds."""
    buf = bytearray()
    try:
        async with asyncio.timeout(max(0.05, wait)):
            async for chunk in response.aiter_bytes():
                buf += chunk
                if len(buf) >= limit:
                    break
    except (TimeoutError, httpx2.HTTPError):
        pass
    return bytes(buf[:limit])


async def status_error(response: httpx2.Response, wait: float = 5.0) -> BackendError:
    """``HTTP 429 Too Many Requests, retry after 20 s: rate limited``."""
    status = response.status_code
    phrase = response.reason_phrase
    if not phrase:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
    head = f"HTTP {status} {phrase}".rstrip()
    after = retry_after(response.headers.get("retry-after"))
    if after:
        head += f", retry after {after}"
    if 300 <= status < 400 and response.headers.get("location"):
        head += f" (redirect to {one_line(response.headers['location'], 80)})"
    body = await read_some(response, wait=wait)
    message = body_message(body, response.headers.get("content-type", ""))
    return BackendError(f"{head}: {message}" if message else head)


__all__ = [
    "ERROR_BODY_LIMIT",
    "body_message",
    "error_message",
    "host_port",
    "one_line",
    "read_some",
    "retry_after",
    "secs",
    "status_error",
    "transport_error",
]
