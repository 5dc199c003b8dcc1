"""GitHubSignature: GitHub's documented test vector verifies; every other signature is refused."""

from __future__ import annotations

import pytest

from verification import GitHubSignature
from verification.errors import GitHubSignatureInvalid
from verification.github import signature

# GitHub's own example ("Validating webhook deliveries", docs.github.com).
SECRET = b"It's a Secret to Everybody"
PAYLOAD = b"Hello, World!"
DOCUMENTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
LEGACY = "sha1=" + "0" * 40


def refused(headers: dict[str, str], body: bytes = PAYLOAD, secret: bytes = SECRET) -> str:
    with pytest.raises(GitHubSignatureInvalid) as error:
        GitHubSignature(secret).verify(headers, body)
    assert error.value.reason == "github-signature"
    assert error.value.status == 401
    return error.value.message


def test_githubs_documented_test_vector_verifies():
    assert signature(SECRET, PAYLOAD) == DOCUMENTED
    assert GitHubSignature(SECRET).verify({"X-Hub-Signature-256": DOCUMENTED}, PAYLOAD) is None


def test_header_names_are_case_insensitive_and_sha1_beside_a_right_256_is_ignored():
    headers = {"x-hub-signature-256": DOCUMENTED, "X-Hub-Signature": LEGACY}
    assert GitHubSignature(SECRET).verify(headers, PAYLOAD) is None


def test_a_wrong_secret_is_refused():
    refused({"X-Hub-Signature-256": DOCUMENTED}, secret=b"It's a Secret to Nobody")


def test_a_changed_body_is_refused():
    refused({"X-Hub-Signature-256": DOCUMENTED}, body=PAYLOAD + b" ")


@pytest.mark.parametrize(
    "value",
    [
        DOCUMENTED[:-1],  # truncated
        DOCUMENTED[:-2],
        "sha256=",
        DOCUMENTED.removeprefix("sha256="),  # no algorithm
        DOCUMENTED.replace("sha256=", "sha1="),
        DOCUMENTED.replace("sha256=", "SHA256="),
        DOCUMENTED[:-1] + "g",  # not hex
        DOCUMENTED + "00",
        f"{DOCUMENTED}, {DOCUMENTED}",  # two headers joined
    ],
)
def test_a_malformed_or_truncated_signature_is_refused(value):
    refused({"X-Hub-Signature-256": value})


def test_a_missing_header_is_refused():
    assert refused({}) == "X-Hub-Signature-256 header is missing"
    assert refused({"X-Hub-Signature-256": ""}) == "X-Hub-Signature-256 header is missing"


def test_the_legacy_sha1_header_alone_is_refused_even_when_it_is_right():
    import hashlib
    import hmac

    right_sha1 = "sha1=" + hmac.new(SECRET, PAYLOAD, hashlib.sha1).hexdigest()
    with pytest.raises(GitHubSignatureInvalid) as error:
        GitHubSignature(SECRET).verify({"X-Hub-Signature": right_sha1}, PAYLOAD)
    assert "SHA-1" in error.value.detail


def test_a_right_sha1_never_rescues_a_wrong_sha256():
    import hashlib
    import hmac

    right_sha1 = "sha1=" + hmac.new(SECRET, PAYLOAD, hashlib.sha1).hexdigest()
    wrong = signature(b"another secret", PAYLOAD)
    refused({"X-Hub-Signature-256": wrong, "X-Hub-Signature": right_sha1})


def test_an_empty_secret_is_refused_and_the_secret_never_shows_in_repr():
    with pytest.raises(ValueError):
        GitHubSignature(b"")
    assert "Secret" not in repr(GitHubSignature(SECRET))
