"""One TLS context per process for the service's outbound HTTPS clients (Twilio's API, opt-out webhooks).

httpx builds a new context for every client it opens, loading the CA bundle again: 35-60 ms
of CPU each. `ivr serve` opens two at start-up (the recording fetcher and the opt-out
notifier), and every test that starts the app paid for both (about 60 s of CPU over the
suite). The context is the one httpx would build (`httpx.create_ssl_context()`: certifi's
bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), made once; a context may be shared by
clients and threads.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every outbound client of this process shares."""
    return httpx.create_ssl_context()
