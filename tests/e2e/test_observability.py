"""Metrics, the per-request log line, readiness and HTTPS, each on its own server process."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import pki
from tests.e2e.conftest import envelope, intent, post

ROUTES = """
[intents.TextIntent]
host = "127.0.0.1"
port = {text}

[intents.StallIntent]
host = "127.0.0.1"
port = {stall}
timeout = 0.3
"""


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def known_sequence(url, signed):
    """3 answered, 1 apology, 2 refused (1 unsigned, 1 malformed), 1 untrusted intent name."""
    for _ in range(3):
        assert signed(url, intent("TextIntent")).status == 200
    assert signed(url, intent("StallIntent")).status == 200
    assert post(url + "/", json.dumps(intent("TextIntent")).encode()).status == 400
    assert signed(url, b"{nope").status == 400
    assert signed(url, intent("Random1234Intent")).status == 200


@pytest.fixture(scope="module")
def ports(function_process):
    return {"text": function_process("text"), "stall": function_process("stall")}


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_count_a_known_sequence(start_server, signed, ports, workers):
    server = start_server(ROUTES.format(**ports), workers=workers)
    known_sequence(server.url, signed)
    found = samples(server.admin_url)
    requests = "funker_dispatch_requests_total"
    ok = {"request_type": "IntentRequest", "locale": "en-GB"}
    assert value(found, requests, intent="TextIntent", outcome="ok", **ok) == 3
    assert value(found, requests, intent="StallIntent", outcome="apology", **ok) == 1
    # A name neither routed nor in the model is not a label value of its own.
    assert value(found, requests, intent="other", outcome="apology", **ok) == 1
    assert not any("Random1234Intent" in str(key) for key in found)
    failures = "funker_dispatch_verification_failures_total"
    assert value(found, failures, reason="headers") == 1
    assert value(found, failures, reason="malformed") == 1
    assert (
        value(
            found, "funker_dispatch_function_failures_total", route="StallIntent", kind="deadline"
        )
        == 1
    )
    assert value(found, "funker_dispatch_function_seconds_count", route="TextIntent") == 3
    assert value(found, "funker_dispatch_in_flight") == 0


def test_request_log_lines_are_json_with_the_design_fields(start_server, signed, ports):
    server = start_server(ROUTES.format(**ports))
    body = intent("TextIntent")
    assert signed(server.url, body).status == 200
    request_id = body["request"]["requestId"]
    log = server.wait_for_log(f'"request_id":"{request_id}"')
    line = next(line for line in log.splitlines() if request_id in line)
    record = json.loads(line)  # the whole line is JSON
    for field in (
        "request_id",
        "request_type",
        "intent",
        "route",
        "outcome",
        "reason",
        "verify_ms",
        "function_ms",
        "total_ms",
    ):
        assert field in record
    assert record["verify_ms"] >= 0 and record["function_ms"] >= 0
    assert record["user"] and len(record["user"]) == 12
    assert "TESTUSER" not in log and "amzn1.ask.device.TEST" not in log


def test_readyz_and_healthz_answer(start_server, ports):
    server = start_server(ROUTES.format(**ports))
    assert post(server.url + "/healthz", b"", method="GET").status == 200
    assert post(server.admin_url + "/readyz", b"", method="GET").json == {"status": "ready"}


def test_https_served_directly_with_a_certificate_the_test_makes(
    start_server, signed, ports, tmp_path_factory, dev_ca
):
    tls_root = pki.tls_root()
    certificate = pki.server_certificate(tls_root)
    tmp = tmp_path_factory.mktemp("tls")
    (tmp / "cert.pem").write_bytes(certificate.pem)
    (tmp / "key.pem").write_bytes(certificate.key_pem)
    server = start_server(
        ROUTES.format(**ports),
        env={
            "FUNKER_DISPATCH_SERVER_CERTFILE": str(tmp / "cert.pem"),
            "FUNKER_DISPATCH_SERVER_KEYFILE": str(tmp / "key.pem"),
        },
        scheme="https",
        ssl_context=_client_context(tls_root),
    )
    assert server.url.startswith("https://")
    body = json.dumps(envelope({"type": "LaunchRequest"})).encode()
    request = urllib.request.Request(
        server.url + "/",
        data=body,
        headers={"Content-Type": "application/json", **dev_ca.sign(body)},
    )
    with urllib.request.urlopen(request, context=_client_context(tls_root), timeout=10) as reply:
        assert reply.status == 200
        assert "Welcome" in json.loads(reply.read())["response"]["outputSpeech"]["ssml"]


def _client_context(tls_root) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=tls_root.pem.decode())
    return context


def test_server_with_verification_off_says_so_loudly_and_still_checks_the_skill_id(
    start_server, ports, tmp_path_factory
):
    from skill.settings import DEVELOPMENT_SKILL_ID

    base = (
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n'
        "verify_signature = false\nverify_timestamp = false\n\n"
    )
    server = start_server(ROUTES.format(**ports), base=base)
    log = server.log()
    assert "SIGNATURE VERIFICATION IS OFF" in log
    assert "TIMESTAMP VERIFICATION IS OFF" in log
    unsigned = json.dumps(intent("TextIntent")).encode()
    assert post(server.url + "/", unsigned).status == 200
    stranger = json.dumps(intent("TextIntent", application_id="amzn1.ask.skill.other")).encode()
    assert post(server.url + "/", stranger).json["error"] == "application-id"


def test_configured_metrics_directory_loses_only_stale_metric_files(
    start_server, ports, tmp_path_factory
):
    directory = tmp_path_factory.mktemp("metrics")
    (directory / "keep.txt").write_text("not ours")
    (directory / "counter_999999.db").write_bytes(b"stale")
    server = start_server(ROUTES.format(**ports), env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert post(server.admin_url + "/metrics", b"", method="GET").status == 200
    assert (directory / "keep.txt").read_text() == "not ours"
    assert not (directory / "counter_999999.db").exists()
