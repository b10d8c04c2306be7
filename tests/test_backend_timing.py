"""TLS set-up of the backend clients: no CA store for plain-http loopback, one shared verifying context otherwise."""

from __future__ import annotations

import ssl

from thunderdome.backends.http import make_client, tls_context
from thunderdome.specs import Timeouts


def test_plain_http_on_loopback_loads_no_ca_store_and_https_verifies() -> None:
    plain = tls_context("http://127.0.0.1:8080/v1", trust_env=False)
    assert plain.verify_mode == ssl.CERT_NONE and plain.cert_store_stats()["x509_ca"] == 0
    secure = tls_context("https://api.example.com/v1", trust_env=True)
    assert secure.verify_mode == ssl.CERT_REQUIRED and secure.check_hostname
    assert secure.cert_store_stats()["x509_ca"] > 0
    assert tls_context("https://other.example.com", trust_env=True) is secure  # loaded once, shared
    assert tls_context("http://lan-box:11434", trust_env=True).verify_mode == ssl.CERT_REQUIRED  # a proxy may be TLS


async def test_clients_share_the_context() -> None:
    a = make_client(Timeouts(), "http://127.0.0.1:1234/v1")
    b = make_client(Timeouts(), "http://localhost:1234/v1")
    try:
        assert a._transport._pool._ssl_context is b._transport._pool._ssl_context  # type: ignore[attr-defined]
    finally:
        await a.aclose()
        await b.aclose()
