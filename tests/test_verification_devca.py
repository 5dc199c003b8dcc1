"""The development CA: created once and atomically, reloaded identically, renewed in place."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verification import DevCA, SignatureVerifier, SnsVerifier, VerificationFailed
from verification.devca import default_home, local_chains_fetcher
from verification.snsurl import check_signing_cert_url

BODY = b'{"version": "1.0", "request": {"type": "LaunchRequest"}}'
REPO = Path(__file__).resolve().parent.parent
TOPIC = "arn:aws:sns:us-east-1:123456789012:funker-dispatch-dev"
SNS_HEADERS = {"x-amz-sns-message-type": "Notification"}


def notification(now: datetime | None = None) -> dict[str, str]:
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "Type": "Notification",
        "MessageId": "0b7c3e1a-9d9e-5a4b-8a5e-3c8f1d2e4b6a",
        "TopicArn": TOPIC,
        "Message": "hello",
        "Timestamp": when,
    }


NOTIFICATION = notification()


def public_key_bytes(ca: DevCA) -> bytes:
    return ca.leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def trusting_verifier(ca: DevCA, **options) -> SignatureVerifier:
    # fallback=None: a test must never reach the network for an unmapped URL.
    fetch = local_chains_fetcher({ca.chain_url: ca.chain_path}, fallback=None)
    return SignatureVerifier(roots=[ca.root], fetch=fetch, **options)


def sns_verifier(ca: DevCA, **options) -> SnsVerifier:
    fetch = local_chains_fetcher({ca.sns_chain_url: ca.sns_chain_path}, fallback=None)
    return SnsVerifier(roots=[ca.root], fetch=fetch, topics=[TOPIC], **options)


def test_signed_body_verifies_through_the_mapped_local_chain(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    trusting_verifier(ca).verify(ca.sign(BODY), BODY.decode(), None)


def test_chain_url_passes_amazons_url_rules_and_sign_returns_only_sha256(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    headers = ca.sign(BODY)
    assert set(headers) == {"Signature-256", "SignatureCertChainUrl"}
    assert headers["SignatureCertChainUrl"] == ca.chain_url
    assert ca.chain_url.startswith("https://s3.amazonaws.com/echo.api/funker-dispatch-dev")


def test_tampered_body_is_refused(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    with pytest.raises(VerificationFailed) as failure:
        trusting_verifier(ca).verify(ca.sign(BODY), BODY.decode().replace("1.0", "1.1"), None)
    assert failure.value.reason == "signature"


def test_signature_is_refused_by_a_verifier_that_does_not_trust_the_dev_root(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    stranger = DevCA.load_or_create(tmp_path / "other")
    fetch = local_chains_fetcher({ca.chain_url: ca.chain_path}, fallback=None)
    verifier = SignatureVerifier(roots=[stranger.root], fetch=fetch)
    with pytest.raises(VerificationFailed) as failure:
        verifier.verify(ca.sign(BODY), BODY.decode(), None)
    assert failure.value.reason == "chain"


def test_created_once_then_loaded_identically(tmp_path):
    first = DevCA.load_or_create(tmp_path)
    files = {path.name: path.read_bytes() for path in first.path.rglob("*") if path.is_file()}
    second = DevCA.load_or_create(str(tmp_path))
    assert second.root == first.root
    assert second.leaf == first.leaf
    assert second.chain_url == first.chain_url
    assert second.chain_path == first.chain_path == tmp_path / "devca" / "chain.pem"
    assert {p.name: p.read_bytes() for p in second.path.rglob("*") if p.is_file()} == files
    assert second.sign(BODY) == first.sign(BODY)  # PKCS#1 v1.5 is deterministic


def test_private_keys_are_readable_by_the_owner_only(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    keys = sorted(ca.path.glob("*.key"))
    assert [key.name for key in keys] == ["intermediate.key", "leaf.key", "root.key"]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_two_dev_cas_never_share_a_chain_url(tmp_path):
    assert DevCA.load_or_create(tmp_path / "a").chain_url != (
        DevCA.load_or_create(tmp_path / "b").chain_url
    )


RACER = """
import json, sys
from cryptography.hazmat.primitives.serialization import Encoding
from verification.devca import DevCA
sys.stdin.read()  # every racer is imported and waiting; closing stdin starts them together
ca = DevCA.load_or_create(sys.argv[1])
print(json.dumps({"root": ca.root.public_bytes(Encoding.PEM).decode(), "url": ca.chain_url,
                  "chain": ca.chain_path.read_text(), "sns": ca.sns_chain_path.read_text()}))
"""


def test_processes_racing_to_create_end_with_one_consistent_ca(tmp_path):
    home = tmp_path / "home"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(home)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        for _ in range(6)
    ]
    answers = []
    try:
        for racer in racers:
            racer.stdin.close()  # type: ignore[union-attr]
        for racer in racers:
            out = racer.stdout.read()  # type: ignore[union-attr]
            err = racer.stderr.read()  # type: ignore[union-attr]
            assert racer.wait(timeout=60) == 0, err.decode()
            answers.append(json.loads(out))
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
            racer.wait()
            racer.stdout.close()  # type: ignore[union-attr]
            racer.stderr.close()  # type: ignore[union-attr]
    assert all(answer == answers[0] for answer in answers)
    assert sorted(path.name for path in home.iterdir()) == ["devca"]  # no staging left behind
    ca = DevCA.load_or_create(home)
    assert ca.chain_url == answers[0]["url"]
    trusting_verifier(ca).verify(ca.sign(BODY), BODY.decode(), None)
    message = ca.sign_sns(NOTIFICATION)
    sns_verifier(ca).verify(SNS_HEADERS, json.dumps(message).encode())


def test_leaf_near_expiry_is_renewed_with_the_same_key(tmp_path):
    created = datetime.now(UTC)
    old = DevCA.load_or_create(tmp_path, now=lambda: created)
    late = created + timedelta(days=340)  # within 30 days of the one-year leaf's expiry
    renewed = DevCA.load_or_create(tmp_path, now=lambda: late)
    assert renewed.leaf.serial_number != old.leaf.serial_number
    assert renewed.leaf.not_valid_after_utc > old.leaf.not_valid_after_utc + timedelta(days=300)
    assert public_key_bytes(renewed) == public_key_bytes(old)
    assert renewed.chain_url == old.chain_url and renewed.root == old.root
    assert DevCA.load_or_create(tmp_path, now=lambda: late).leaf == renewed.leaf  # renewed once


def test_a_server_caching_the_old_leaf_accepts_signatures_made_after_renewal(tmp_path):
    created = datetime.now(UTC)
    old = DevCA.load_or_create(tmp_path, now=lambda: created)
    late = created + timedelta(days=340)
    server = trusting_verifier(old, now=lambda: late)
    server.verify(old.sign(BODY), BODY.decode(), None)  # old leaf now cached
    renewed = DevCA.load_or_create(tmp_path, now=lambda: late)
    server.verify(renewed.sign(BODY), BODY.decode(), None)
    # A server starting after the renewal fetches and validates the new chain.
    trusting_verifier(renewed, now=lambda: late).verify(renewed.sign(BODY), BODY.decode(), None)


def test_intermediate_near_expiry_is_renewed_and_the_chain_still_validates(tmp_path):
    created = datetime.now(UTC)
    DevCA.load_or_create(tmp_path, now=lambda: created)
    late = created + timedelta(days=3640)  # ten days before the intermediate expires
    renewed = DevCA.load_or_create(tmp_path, now=lambda: late)
    intermediate = renewed.path / "intermediate.pem"
    assert intermediate.read_bytes() in renewed.chain_path.read_bytes()
    # The root (ten years, not renewed) caps the new certificates' lifetime.
    assert renewed.leaf.not_valid_after_utc <= renewed.root.not_valid_after_utc
    trusting_verifier(renewed, now=lambda: late).verify(renewed.sign(BODY), BODY.decode(), None)


def test_an_incomplete_ca_folder_is_reported_not_overwritten(tmp_path):
    (tmp_path / "devca").mkdir()
    (tmp_path / "devca" / "stray").write_text("left by hand")
    with pytest.raises(ValueError, match="no complete development CA"):
        DevCA.load_or_create(tmp_path)
    assert (tmp_path / "devca" / "stray").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["devca"]


def test_sign_takes_bytes_only(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    with pytest.raises(TypeError):
        ca.sign(BODY.decode())  # type: ignore[arg-type]


def test_default_home_prefers_funker_dispatch_home_then_xdg_state_then_local_state(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_home() == tmp_path / "explicit"
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", "")
    assert default_home() == tmp_path / "state" / "funker-dispatch"
    monkeypatch.delenv("FUNKER_DISPATCH_HOME")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_home() == tmp_path / "user" / ".local" / "state" / "funker-dispatch"


def test_load_or_create_without_a_home_uses_the_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(tmp_path))
    assert DevCA.load_or_create().path == tmp_path / "devca"


# --- local_chains_fetcher ----------------------------------------------------------------------


def test_local_fetcher_matches_urls_after_normalization(tmp_path):
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"PEM")
    fetch = local_chains_fetcher(
        {"https://S3.amazonaws.com:443/echo.api/./dev.pem": str(chain)}, fallback=None
    )
    assert fetch("https://s3.amazonaws.com/echo.api/dev.pem") == b"PEM"


def test_local_fetcher_passes_unmapped_urls_to_the_fallback(tmp_path):
    asked: list[str] = []

    def fallback(url: str) -> bytes:
        asked.append(url)
        return b"remote"

    fetch = local_chains_fetcher({}, fallback=fallback)
    assert fetch("https://s3.amazonaws.com/echo.api/x.pem") == b"remote"
    assert asked == ["https://s3.amazonaws.com/echo.api/x.pem"]


@pytest.mark.parametrize("mapped", [False, True], ids=["unmapped", "file-missing"])
def test_local_fetcher_failures_are_cert_fetch(tmp_path, mapped):
    url = "https://s3.amazonaws.com/echo.api/dev.pem"
    fetch = local_chains_fetcher({url: tmp_path / "gone.pem"} if mapped else {}, fallback=None)
    with pytest.raises(VerificationFailed) as failure:
        fetch(url)
    assert failure.value.reason == "cert-fetch"


def test_local_fetcher_reads_the_file_at_each_fetch(tmp_path):
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"one")
    fetch = local_chains_fetcher({"https://s3.amazonaws.com/echo.api/dev.pem": chain})
    chain.write_bytes(b"two")
    assert fetch("https://s3.amazonaws.com/echo.api/dev.pem") == b"two"
    assert os.path.exists(chain)


# --- the SNS leaf ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_message_signed_for_sns_verifies_through_the_mapped_local_chain(tmp_path, version):
    ca = DevCA.load_or_create(tmp_path)
    message = ca.sign_sns(notification(), version=version)
    assert message["SignatureVersion"] == version
    assert message["SigningCertURL"] == ca.sns_chain_url
    assert sns_verifier(ca).verify(SNS_HEADERS, json.dumps(message).encode())["Message"] == "hello"


def test_sign_sns_re_signs_a_signed_message_and_leaves_the_original_alone(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    recorded = {**notification(), "Signature": "old", "SigningCertURL": "https://x/y.pem"}
    signed = ca.sign_sns(recorded)
    assert recorded["Signature"] == "old"
    assert sns_verifier(ca).verify(SNS_HEADERS, json.dumps(signed).encode())


def test_sign_sns_knows_only_the_two_signature_versions(tmp_path):
    with pytest.raises(ValueError):
        DevCA.load_or_create(tmp_path).sign_sns(notification(), version="3")


def test_the_sns_chain_url_obeys_snss_own_url_rule_and_names_the_root(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    assert check_signing_cert_url(ca.sns_chain_url) == ca.sns_chain_url
    assert ca.sns_chain_url != DevCA.load_or_create(tmp_path / "other").sns_chain_url


def test_the_sns_leaf_is_for_sns_and_its_key_private(tmp_path):
    ca = DevCA.load_or_create(tmp_path)
    assert ca.sns_leaf.subject.rfc4514_string().startswith("CN=sns.amazonaws.com,")
    assert stat.S_IMODE((ca.path / "sns" / "leaf.key").stat().st_mode) == 0o600
    assert ca.sns_chain_path == tmp_path / "devca" / "sns" / "chain.pem"


def test_a_ca_made_before_sns_gains_an_sns_leaf_and_keeps_the_rest(tmp_path):
    old = DevCA.load_or_create(tmp_path)
    for path in (old.path / "sns").iterdir():
        path.unlink()
    (old.path / "sns").rmdir()
    again = DevCA.load_or_create(tmp_path)
    assert (again.root, again.leaf, again.chain_url) == (old.root, old.leaf, old.chain_url)
    message = again.sign_sns(notification())
    assert sns_verifier(again).verify(SNS_HEADERS, json.dumps(message).encode())


def test_a_renewed_intermediate_renews_the_sns_chain_with_the_same_key(tmp_path):
    created = datetime.now(UTC)
    old = DevCA.load_or_create(tmp_path, now=lambda: created)
    late = created + timedelta(days=3640)
    renewed = DevCA.load_or_create(tmp_path, now=lambda: late)
    assert renewed.sns_leaf.public_key() == old.sns_leaf.public_key()
    assert (renewed.path / "intermediate.pem").read_bytes() in renewed.sns_chain_path.read_bytes()
    message = renewed.sign_sns(notification(late))
    verifier = sns_verifier(renewed, now=lambda: late)
    assert verifier.verify(SNS_HEADERS, json.dumps(message).encode())


def test_the_local_fetcher_matches_sns_urls_after_snss_normalization(tmp_path):
    chain = tmp_path / "sns.pem"
    chain.write_bytes(b"pem")
    spelled = "https://SNS.eu-west-1.AmazonAWS.com:443/SimpleNotificationService-a.pem"
    fetch = local_chains_fetcher({spelled: chain}, fallback=None)
    assert fetch("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem") == b"pem"
