"""Every verification failure class through the real server: 400, its reason, no function call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from skill.settings import DEVELOPMENT_SKILL_ID
from tests import pki
from tests.e2e.conftest import intent, post

URL = "https://s3.amazonaws.com/echo.api/{}.pem"
TODAY = datetime.now(UTC)
VALID = {"not_before": TODAY - timedelta(days=1), "not_after": TODAY + timedelta(days=30)}


def chain(name, *, trusted_root, **leaf):
    middle = pki.intermediate(trusted_root, **VALID)
    options = {**VALID, **leaf}
    return pki.AlexaChain(trusted_root, middle, pki.alexa_leaf(middle, **options), URL.format(name))


@pytest.fixture(scope="module")
def chains():
    trusted = pki.root("E2E Trusted Root", **VALID)
    stranger = pki.root("E2E Untrusted Root", **VALID)
    return trusted, {
        "good": chain("good", trusted_root=trusted),
        "expired": chain(
            "expired",
            trusted_root=trusted,
            not_before=TODAY - timedelta(days=60),
            not_after=TODAY - timedelta(days=1),
        ),
        "not-yet-valid": chain(
            "future",
            trusted_root=trusted,
            not_before=TODAY + timedelta(days=1),
            not_after=TODAY + timedelta(days=60),
        ),
        "san": chain("san", trusted_root=trusted, dns_names=("example.com",)),
        "wildcard": chain("wildcard", trusted_root=trusted, dns_names=("*.amazon.com",)),
        "chain": chain("stranger", trusted_root=stranger),
    }


@pytest.fixture(scope="module")
def server(function_process, start_server, chains, dev_ca, tmp_path_factory):
    trusted, by_name = chains
    tmp = tmp_path_factory.mktemp("verification")
    roots = tmp / "roots.pem"
    roots.write_bytes(trusted.pem + dev_ca.root.public_bytes(Encoding.PEM))
    mapping = [f'"{dev_ca.chain_url}" = "{dev_ca.chain_path}"']
    for name, alexa in by_name.items():
        path = tmp / f"{name}.pem"
        path.write_bytes(alexa.pem)
        mapping.append(f'"{alexa.url}" = "{path}"')
    base = (
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f'[verification]\ntrusted_roots = ["{roots}"]\n\n'
        "[verification.local_chains]\n" + "\n".join(mapping) + "\n\n"
    )
    port = function_process("echo")
    return start_server(f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {port}\n', base=base)


def send(server, body: bytes, headers: dict[str, str]):
    return post(server.url + "/", body, headers)


def assert_refused(answer, reason):
    assert answer.status == 400, answer.body
    assert answer.json["error"] == reason
    assert "Traceback" not in answer.body.decode()


def body_of(envelope) -> bytes:
    return json.dumps(envelope).encode()


def test_a_request_signed_by_a_trusted_chain_is_answered(server, chains):
    body = body_of(intent("EchoIntent"))
    answer = send(server, body, chains[1]["good"].sign(body))
    assert answer.status == 200
    assert answer.speech == "echo"


@pytest.mark.parametrize("defect", ["expired", "not-yet-valid", "san", "chain"])
def test_defective_certificate_is_refused_with_its_own_reason(server, chains, defect):
    body = body_of(intent("EchoIntent"))
    assert_refused(send(server, body, chains[1][defect].sign(body)), defect)


def test_wildcard_san_does_not_count(server, chains):
    body = body_of(intent("EchoIntent"))
    assert_refused(send(server, body, chains[1]["wildcard"].sign(body)), "san")


def test_signature_over_other_bytes_is_refused(server, chains):
    envelope = intent("EchoIntent")
    signed_body = body_of(envelope)
    # Same JSON, re-serialized differently: the signature covers the raw bytes.
    sent = json.dumps(envelope, indent=1).encode()
    assert_refused(send(server, sent, chains[1]["good"].sign(signed_body)), "signature")


def test_tampered_body_is_refused(server, dev_ca):
    body = body_of(intent("EchoIntent"))
    headers = dev_ca.sign(body)
    assert_refused(send(server, body.replace(b"EchoIntent", b"EchoIntenT"), headers), "signature")


@pytest.mark.parametrize(
    "url",
    [
        "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        "https://notamazon.com/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
        "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",
        "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
    ],
)
def test_certificate_url_outside_amazons_rules_is_refused(server, dev_ca, url):
    body = body_of(intent("EchoIntent"))
    headers = {**dev_ca.sign(body), "SignatureCertChainUrl": url}
    assert_refused(send(server, body, headers), "cert-url")


def test_missing_signature_is_refused(server, dev_ca):
    body = body_of(intent("EchoIntent"))
    headers = {"SignatureCertChainUrl": dev_ca.sign(body)["SignatureCertChainUrl"]}
    assert_refused(send(server, body, headers), "headers")


@pytest.mark.parametrize("seconds", [151, -151])
def test_timestamp_outside_150_seconds_is_refused(server, dev_ca, seconds):
    envelope = intent("EchoIntent")
    stamp = datetime.now(UTC) - timedelta(seconds=seconds)
    envelope["request"]["timestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = body_of(envelope)
    assert_refused(send(server, body, dev_ca.sign(body)), "timestamp")


def test_refusals_are_logged_with_reason_and_request_id(server, dev_ca):
    envelope = intent("EchoIntent")
    request_id = envelope["request"]["requestId"]
    body = body_of(envelope)
    send(server, body.replace(b"1.0", b"1.1"), dev_ca.sign(body))
    log = server.wait_for_log(f'"request_id":"{request_id}"')
    record = json.loads(
        next(line for line in log.splitlines() if request_id in line and line.startswith("{"))
    )
    assert record["outcome"] == "rejected"
    assert record["reason"] == "signature"
    assert record["route"] is None  # nothing was forwarded


def test_prefetch_failure_warns_and_the_server_still_serves(start_server, dev_ca, tmp_path_factory):
    from tests.e2e.conftest import trusted_config

    base = trusted_config(dev_ca, tmp_path_factory.mktemp("prefetch")).replace(
        "[verification]\n",
        "[verification]\n"
        f'prefetch = ["{dev_ca.chain_url}", "http://s3.amazonaws.com/echo.api/x.pem"]\n',
    )
    server = start_server("", base=base)
    log = server.wait_for_log("prefetch failed")
    line = next(line for line in log.splitlines() if "prefetch failed" in line)
    assert "http://s3.amazonaws.com/echo.api/x.pem" in line
    assert dev_ca.chain_url not in log.split("prefetch failed")[1].splitlines()[0]
    assert post(server.admin_url + "/readyz", b"", method="GET").status == 200
