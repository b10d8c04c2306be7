"""The HTTP client of a backend: one pooled httpx2 client, HTTP/1.1.

Invariant: no read timeout is set here (the turn's own first-token, idle and
total deadlines, ``watchdog.TurnTimer``, govern reads); a loopback server is
reached without the environment's proxies and a plain-http URL loads no CA
store; anything else verifies certificates as httpx2 would, with one SSL
context per setting shared by the whole process.
"""

from __future__ import annotations

import functools
import os
import ssl
from urllib.parse import urlsplit

import httpx2

from thunderdome.core.specs import Timeouts

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@functools.lru_cache(maxsize=8)
def _ssl_context(verify: bool, trust_env: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """One SSL context per setting, shared by every client of the process
    (loading the CA store costs ~16 ms; contexts are safe to share)."""
    return httpx2.create_ssl_context(verify=verify, trust_env=trust_env)


def tls_context(base_url: str, trust_env: bool) -> ssl.SSLContext:
    """What a client for ``base_url`` verifies with. A plain-http loopback URL
    never meets TLS (no proxy, no redirects followed): no CA store to load.
    Anything else verifies certificates as httpx2 would, with a shared context."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not trust_env:
        return _ssl_context(False, False, None, None)
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    return _ssl_context(True, trust_env, *env)


def make_client(timeouts: Timeouts, base_url: str) -> httpx2.AsyncClient:
    """One pooled HTTP/1.1 client. No read timeout here: the turn's own
    first-token / idle / total timeouts (``TurnTimer``) govern reads. Proxy
    settings from the environment apply, except for loopback servers."""
    host = urlsplit(base_url).hostname or ""
    trust_env = host not in _LOOPBACK
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(connect=timeouts.connect, read=None, write=timeouts.connect, pool=timeouts.connect),
        http1=True,
        http2=False,
        follow_redirects=False,
        trust_env=trust_env,
        verify=tls_context(base_url, trust_env),
        headers={"user-agent": "thunderdome"},
    )


__all__ = ["make_client", "tls_context"]
