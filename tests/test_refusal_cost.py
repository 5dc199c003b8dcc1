"""An unsigned or badly signed request costs little: no SDK model object is built for it (§14).

The app in-process, with a spy on the one place the SDK's model objects are
made (`EnvelopeSerializer.deserialize`): refused bodies of any shape must
never reach it; a genuine one reaches it once. Cost itself is measured in
bench/refusals.py, never asserted here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from skill.app import create_app
from skill.envelope import MAX_BODY_BYTES, EnvelopeSerializer
from skill.settings import DEVELOPMENT_SKILL_ID, load_settings
from verification.devca import DevCA


@pytest.fixture(scope="module")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    return DevCA.load_or_create(tmp_path_factory.mktemp("devca-home"))


@pytest.fixture(scope="module")
def client(dev_ca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("refusal-cost")
    root = tmp / "root.pem"
    root.write_bytes(dev_ca.root.public_bytes(Encoding.PEM))
    config = tmp / "dispatch.toml"
    config.write_text(
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f'[verification]\ntrusted_roots = ["{root}"]\n\n'
        f'[verification.local_chains]\n"{dev_ca.chain_url}" = "{dev_ca.chain_path}"\n'
    )
    return create_app(load_settings(config, environ={})).test_client()


@pytest.fixture
def deserializations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every request envelope the SDK's serializer turns into model objects."""
    seen: list[Any] = []
    real = EnvelopeSerializer.deserialize

    def counting(self: EnvelopeSerializer, payload: Any, obj_type: Any) -> Any:
        seen.append(obj_type)
        return real(self, payload, obj_type)

    monkeypatch.setattr(EnvelopeSerializer, "deserialize", counting)
    yield seen


def launch() -> dict[str, Any]:
    application = {"applicationId": DEVELOPMENT_SKILL_ID}
    return {
        "version": "1.0",
        "session": {"new": True, "sessionId": "s", "application": application},
        "context": {"System": {"application": application}},
        "request": {
            "type": "LaunchRequest",
            "requestId": "amzn1.echo-api.request.cost",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "locale": "en-US",
        },
    }


def nested_arrays(size: int) -> bytes:
    """An envelope padded with arrays nested 60 deep, as close to `size` bytes as fits."""
    envelope = launch()
    one = "[" * 60 + "]" * 60
    body = json.dumps(envelope)[:-1] + ', "padding": ['
    count = (size - len(body) - 2) // (len(one) + 1)
    return (body + ",".join([one] * count) + "]}").encode()


def many_slots(count: int) -> bytes:
    envelope = launch()
    envelope["request"]["type"] = "IntentRequest"
    envelope["request"]["intent"] = {
        "name": "HelloIntent",
        "slots": {f"s{i}": {"name": f"s{i}", "value": "x"} for i in range(count)},
    }
    return json.dumps(envelope).encode()


def post(client: Any, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/", data=body, headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize(
    "body",
    [nested_arrays(MAX_BODY_BYTES - 100), many_slots(1100)],
    ids=["nested-arrays-under-the-cap", "1100-slots"],
)
def test_an_unsigned_body_of_any_shape_is_refused_before_any_model_object(
    client, deserializations, body
):
    answer = post(client, body, {})
    assert (answer.status_code, answer.get_json()["error"]) == (400, "headers")
    assert deserializations == []


@pytest.mark.parametrize(
    "body", [nested_arrays(MAX_BODY_BYTES - 100), many_slots(1100)], ids=["nested", "slots"]
)
def test_a_forged_signature_is_refused_before_any_model_object(
    client, deserializations, dev_ca, body
):
    headers = dev_ca.sign(json.dumps(launch()).encode())  # a real signature, of another body
    answer = post(client, body, headers)
    assert (answer.status_code, answer.get_json()["error"]) == (400, "signature")
    assert deserializations == []


def test_a_genuine_request_is_deserialized_once(client, deserializations, dev_ca):
    body = json.dumps(launch()).encode()
    answer = post(client, body, dev_ca.sign(body))
    assert answer.status_code == 200, answer.get_data()
    assert len(deserializations) == 1


def test_a_body_over_128_kib_is_refused_unread(client, deserializations, dev_ca):
    body = nested_arrays(MAX_BODY_BYTES + 1000)
    assert MAX_BODY_BYTES == 128 * 1024
    answer = post(client, body, dev_ca.sign(body))
    assert (answer.status_code, answer.get_json()["error"]) == (413, "too-large")
    assert deserializations == []


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.8e308"])
def test_a_signed_body_with_a_number_beyond_a_double_is_malformed(client, dev_ca, number):
    # Python reads 1e400 as infinity; carried into a reply it would be "Infinity", not JSON.
    envelope = launch()
    envelope["session"]["attributes"] = {"carried": 1}
    body = json.dumps(envelope).replace('"carried": 1', f'"carried": {number}').encode()
    answer = post(client, body, dev_ca.sign(body))
    assert (answer.status_code, answer.get_json()["error"]) == (400, "malformed")
    assert "Infinity" not in answer.get_data(as_text=True)
