"""Readiness probes: tiny HTTP(S) checks that answer "is it up yet?" without raising.

Requests bypass any HTTP proxy from the environment, because every bench service is on 127.0.0.1.
"""

import http.client
import ssl
import urllib.error
import urllib.request


def http_get(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bytes | None:
    """Return the body of a 200 answer to GET `url`, or None for any other answer or failure."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body if response.status == 200 else None
    except urllib.error.HTTPError as error:
        error.close()
        return None
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when GET `url` answers 200."""
    return http_get(url, context, timeout) is not None


def insecure_tls() -> ssl.SSLContext:
    """A TLS context that skips verification, for probing self-signed health endpoints only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
