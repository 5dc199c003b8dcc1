"""The default certificate-chain fetcher: HTTPS only, one short deadline, a size cap, no redirects.

It is built on `http.client` (what urllib uses underneath) rather than
`urllib.request.urlopen` because urlopen's timeout applies to each socket
operation, so a server dripping one byte at a time could hold a request far
beyond Alexa's 8 s budget; here one deadline bounds connect, TLS, headers
and body together (every receive gets only what is left: `deadline.py`).
`http.client` never follows redirects, and a redirect is refused outright:
the URL rules were checked for this URL, not another.
No proxy is used; the dispatcher talks to S3 directly.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import certifi

from verification.deadline import DeadlineSocket, tls_handshake
from verification.errors import CertFetchFailed, CertUrlInvalid

#: Seconds for the whole fetch; Alexa allows 8 s for the entire request.
DEFAULT_TIMEOUT = 2.0
#: Amazon's chain is about 7 KiB; anything far larger is not a chain.
MAX_CHAIN_BYTES = 64 * 1024

_context: ssl.SSLContext | None = None
_context_lock = threading.Lock()


def _default_context() -> ssl.SSLContext:
    # certifi rather than the system store: slim container images often ship
    # without one, and it keeps the TLS trust equal to the chain trust.
    global _context
    with _context_lock:
        if _context is None:
            _context = ssl.create_default_context(cafile=certifi.where())
        return _context


def fetch_chain(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
    max_bytes: int = MAX_CHAIN_BYTES,
) -> bytes:
    """GET `url` over HTTPS and return the body; any deviation raises CertFetchFailed."""
    return https_get(url, timeout=timeout, context=context, max_bytes=max_bytes)


def https_get(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
    max_bytes: int = MAX_CHAIN_BYTES,
    what: str = "certificate chain",
) -> bytes:
    """GET `url` (query included) over HTTPS within one deadline, no redirects, at most
    `max_bytes`; the body of a 200, else CertFetchFailed whose message names `what`.

    The certificate fetcher, and the SNS subscription confirmation (whose URL
    the caller has checked first, as the chain URL is).
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise CertUrlInvalid(f"{what} URL does not parse") from None
    if parts.scheme != "https" or not parts.hostname:
        # Refused before any connection: a chain fetched in clear text proves nothing.
        raise CertUrlInvalid(f"{what} is fetched over https only")
    deadline = time.monotonic() + timeout
    context = context or _default_context()
    connection = http.client.HTTPSConnection(parts.hostname, port, context=context)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    response: http.client.HTTPResponse | None = None
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=timeout)
        try:
            tls = tls_handshake(sock, context, parts.hostname, deadline)
        except BaseException:
            sock.close()
            raise
        # A socket in place is used as it is: http.client never connects itself.
        connection.sock = DeadlineSocket(tls, deadline)
        connection.request("GET", target, headers={"Accept": "*/*"})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise CertFetchFailed(f"{what} URL redirects (HTTP {response.status}); refused")
        if response.status != 200:
            raise CertFetchFailed(f"{what} URL answered HTTP {response.status}")
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise CertFetchFailed(f"{what} larger than {max_bytes} bytes")
        body = bytearray()
        while chunk := response.read1(max_bytes + 1 - len(body)):
            body += chunk
            if len(body) > max_bytes:
                raise CertFetchFailed(f"{what} larger than {max_bytes} bytes")
        return bytes(body)
    except CertFetchFailed:
        raise
    except TimeoutError:
        raise CertFetchFailed(f"{what} fetch timed out") from None
    except (OSError, http.client.HTTPException) as exc:  # TLS errors are OSErrors too
        reason = f"{type(exc).__name__}: {exc}"
        raise CertFetchFailed(f"{what} fetch failed: {reason}") from None
    finally:
        # The response owns the socket once the connection hands it over
        # (HTTP/1.0 or "Connection: close"), so both must be closed.
        if response is not None:
            response.close()
        connection.close()
