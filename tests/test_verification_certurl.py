"""Amazon's SignatureCertChainUrl rules: documented examples and the parser oddities around them."""

from __future__ import annotations

import pytest

from verification.certurl import check_cert_url, remove_dot_segments
from verification.errors import CertUrlInvalid

CANONICAL = "https://s3.amazonaws.com/echo.api/echo-api-cert.pem"

# Amazon's documented examples ("Verifying the signature certificate URL").
AMAZON_VALID = [
    "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem",
]
AMAZON_INVALID = [
    "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",  # wrong scheme
    "https://notamazon.com/echo.api/echo-api-cert.pem",  # wrong host
    "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",  # path is case-sensitive
    "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",  # wrong path
    "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",  # wrong port
]

MORE_VALID = [
    "HTTPS://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",  # scheme and host are case-insensitive
    "https://S3.AmazonAWS.com:443/echo.api/./echo-api-cert.pem",
    "https://s3.amazonaws.com/other/../echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com/../echo.api/echo-api-cert.pem",  # ".." above the root stays at root
]
MORE_INVALID = [
    "https://s3.amazonaws.com/echo.api/../other/echo-api-cert.pem",  # climbs out of /echo.api/
    "https://s3.amazonaws.com/echo.api/..",
    "https://s3.amazonaws.com/echo.api",  # no trailing slash, so not under /echo.api/
    "https://s3.amazonaws.com/echo.api.evil/cert.pem",
    "https://s3.amazonaws.com.evil.com/echo.api/echo-api-cert.pem",
    "https://evil.com/s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com./echo.api/echo-api-cert.pem",  # trailing-dot host is not literal
    "https://user@s3.amazonaws.com/echo.api/echo-api-cert.pem",  # userinfo
    "https://s3.amazonaws.com:443@evil.com/echo.api/echo-api-cert.pem",  # host is evil.com
    "https://evil.com\\@s3.amazonaws.com/echo.api/echo-api-cert.pem",  # parsers disagree on "\\"
    "https://s3.amazonaws.com/echo.api/echo-api-cert.pem?versionId=old",  # query
    "https://s3.amazonaws.com/echo.api/echo-api-cert.pem#fragment",
    "https://s3.amazonaws.com/echo.api/%2e%2e/other/cert.pem",  # encoded dot segment
    "https://s3.amazonaws.com/echo.api%2Fcert.pem",  # encoded slash
    "https://s3.amazonaws.com/echo.api/..\\other\\cert.pem",  # backslash separators
    "https://s3.amazonaws.com:0443x/echo.api/echo-api-cert.pem",  # port does not parse
    "https://s3.amazonaws.com:99999/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com:80/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com/echo.api/\techo-api-cert.pem",  # urlsplit would drop the tab
    "https://s3.amazonaws.com/echo.api/echo api.pem",
    "https://s3.amazonaws.com/echo.api/\u00e9cho.pem",
    "ftp://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "//s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "",
]


@pytest.mark.parametrize("url", AMAZON_VALID + MORE_VALID)
def test_valid_url_is_accepted(url):
    assert check_cert_url(url).startswith("https://s3.amazonaws.com/echo.api/")


@pytest.mark.parametrize("url", AMAZON_INVALID + MORE_INVALID)
def test_invalid_url_is_refused_as_cert_url(url):
    with pytest.raises(CertUrlInvalid) as failure:
        check_cert_url(url)
    assert failure.value.reason == "cert-url"


def test_amazon_valid_examples_all_normalize_to_the_same_url():
    assert {check_cert_url(url) for url in AMAZON_VALID} == {CANONICAL}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # RFC 3986 §5.4 examples, reduced to their paths.
        ("/a/b/c/./../../g", "/a/g"),
        ("mid/content=5/../6", "mid/6"),
        ("/b/c/..", "/b/"),
        ("/b/c/.", "/b/c/"),
        ("/../g", "/g"),
        ("/./g", "/g"),
        ("/g.", "/g."),
        ("/.g", "/.g"),
        ("/g..", "/g.."),
        ("/..g", "/..g"),
        ("/b/c/./../g", "/b/g"),
        ("/b/c/./g/.", "/b/c/g/"),
        ("/b/c/g/../h", "/b/c/h"),
        ("//echo.api/x", "//echo.api/x"),  # unlike a file path, "//" is not collapsed
    ],
)
def test_dot_segments_are_removed_as_a_url_path_not_a_file_path(path, expected):
    assert remove_dot_segments(path) == expected
