"""Amazon's rules for the SignatureCertChainUrl header, checked before anything is fetched.

Amazon documents four rules: scheme `https`, host `s3.amazonaws.com` (both
case-insensitive), port absent or 443, and a path that - once dot segments
are removed as RFC 3986 removes them from a URL - starts with `/echo.api/`
(case-sensitive). We add refusals for parts Amazon never sends and that
let two parsers disagree about what the URL names: userinfo, query,
fragment, backslashes, percent-encoded dots or slashes, whitespace and
control characters. The URL we return (and fetch) is the normalized one,
so what was checked is exactly what is requested.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from verification.errors import CertUrlInvalid

AMAZON_HOST = "s3.amazonaws.com"
PATH_PREFIX = "/echo.api/"

# Printable ASCII without space: urlsplit silently drops tabs and newlines,
# which would let the checked URL differ from the header's text.
_PLAIN = re.compile(r"[!-~]+")
# %2e ('.'), %2f ('/'), %5c ('\'): a server may decode them into dot segments
# or separators after our remove_dot_segments has already run.
_ENCODED_SEPARATOR = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


def check_cert_url(url: str) -> str:
    """Return the normalized chain URL, or raise CertUrlInvalid naming the broken rule."""
    if not isinstance(url, str) or not _PLAIN.fullmatch(url):
        raise CertUrlInvalid("certificate URL has spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # e.g. a non-numeric or out-of-range port
        raise CertUrlInvalid(f"certificate URL does not parse: {exc}") from None
    if parts.scheme.lower() != "https":
        raise CertUrlInvalid("certificate URL scheme is not https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CertUrlInvalid("certificate URL carries userinfo")
    if (parts.hostname or "").lower() != AMAZON_HOST:
        raise CertUrlInvalid(f"certificate URL host is not {AMAZON_HOST}")
    if port not in (None, 443):
        raise CertUrlInvalid("certificate URL port is not 443")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise CertUrlInvalid("certificate URL has a query or fragment")
    if "\\" in parts.path or _ENCODED_SEPARATOR.search(parts.path):
        raise CertUrlInvalid("certificate URL path has backslashes or encoded separators")
    path = remove_dot_segments(parts.path)
    if not path.startswith(PATH_PREFIX):
        raise CertUrlInvalid(f"certificate URL path does not start with {PATH_PREFIX}")
    return urlunsplit(("https", AMAZON_HOST, path, "", ""))


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, so `/echo.api/../x` is `/x` the way a URL client resolves it.

    `posixpath.normpath` is not the same thing: it collapses `//` and keeps a
    trailing `..` differently, which is why the rule insists on URL semantics.
    """
    source = path
    output: list[str] = []
    while source:
        if source.startswith("../"):
            source = source[3:]
        elif source.startswith(("./", "/./")):
            source = source[2:]
        elif source == "/.":
            source = "/"
        elif source.startswith("/../"):
            source = source[3:]
            if output:
                output.pop()
        elif source == "/..":
            source = "/"
            if output:
                output.pop()
        elif source in (".", ".."):
            source = ""
        else:
            # Move the first segment (with its leading "/", if any) to the output.
            start = 1 if source.startswith("/") else 0
            end = source.find("/", start)
            if end == -1:
                end = len(source)
            output.append(source[:end])
            source = source[end:]
    return "".join(output)
