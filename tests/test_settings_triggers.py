"""`[triggers.sns]` and `[events.NAME]`: parsed once at start, every mistake named by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill.app import body_cap
from skill.settings import DEVELOPMENT_TOPIC, ConfigError, load_settings
from tests import pki

TOPIC = "arn:aws:sns:us-east-1:123456789012:uploads"
BASE = '[skill]\napplication_ids = ["amzn1.ask.skill.test"]\n\n'


def load(tmp_path: Path, text: str):
    path = tmp_path / "dispatch.toml"
    path.write_text(BASE + text)
    return load_settings(path, environ={})


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    return error.value


def test_without_a_triggers_table_there_is_no_sns_endpoint(tmp_path):
    settings = load(tmp_path, "")
    assert settings.triggers.sns is None and settings.rules == {}
    assert body_cap(settings)("/events/sns") == 128 * 1024  # no wider door than Alexa's


def test_sns_defaults(tmp_path):
    sns = load(tmp_path, "[triggers.sns]\n").triggers.sns
    assert sns is not None
    assert sns.topics == ()  # legal, and refuses everything
    assert (sns.confirm, sns.allow_raw, sns.max_age, sns.deadline) == ("auto", False, 3600, 12)
    assert sns.max_body_bytes == 320 * 1024


def test_the_sns_body_cap_is_its_own(tmp_path):
    settings = load(tmp_path, "[triggers.sns]\nmax_body_bytes = 400000\n")
    cap = body_cap(settings)
    assert (cap("/events/sns"), cap("/")) == (400000, 128 * 1024)


def test_rules_parse_with_the_dispatch_function_port(tmp_path):
    settings = load(
        tmp_path,
        "[dispatch]\nfunction_port = 9100\n\n"
        f'[triggers.sns]\ntopics = ["{TOPIC}"]\n\n'
        '[events.uploads]\nsource = "s3"\nhost = "uploads"\nkey_suffix = ".jpg"\n\n'
        '[events."paging.high"]\nsource = "cloudwatch"\nhost = "pager"\nport = 7000\n'
        'state = ["ALARM"]\ntimeout = 2.5\n',
    )
    uploads, paging = settings.rules["uploads"], settings.rules["paging.high"]
    assert (uploads.source, uploads.route.host, uploads.route.port) == ("s3", "uploads", 9100)
    assert (paging.route.port, paging.route.timeout) == (7000, 2.5)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[triggers.sns]\ntopics = ["*"]\n', "triggers.sns.topics"),
        ('[triggers.sns]\ntopics = ["arn:aws:sns:us-east-1:*:uploads"]\n', "triggers.sns.topics"),
        (
            '[triggers.sns]\ntopics = "arn:aws:sqs:us-east-1:123456789012:q"\n',
            "triggers.sns.topics",
        ),
        ('[triggers.sns]\nconfirm = "always"\n', "triggers.sns.confirm"),
        ("[triggers.sns]\ndeadline = 15\n", "triggers.sns.deadline"),
        ("[triggers.sns]\nmax_age = 86400\n", "triggers.sns.max_age"),
        ("[triggers.sns]\nmax_body_bytes = 10\n", "triggers.sns.max_body_bytes"),
        ("[triggers.sns]\nsecret = 1\n", "triggers.sns.secret"),
        ("[triggers.kafka]\n", "triggers.kafka"),
        ("[triggers]\nsns = 1\n", "triggers.sns"),
        ('[triggers.sns]\n[events.x]\nsource = "s3"\n', "events.x.host"),
        ('[triggers.sns]\n[events.x]\nsource = "s3"\nhost = "h"\nalarm = "A"\n', "events.x.alarm"),
        ('[triggers.sns]\n[events."bad name"]\nsource = "s3"\nhost = "h"\n', "events.bad name"),
        ("[triggers.sns]\n[events]\nx = 1\n", "events.x"),
    ],
)
def test_mistakes_name_the_key(tmp_path, text, key):
    assert refused(tmp_path, text).key == key


def test_a_rule_needs_the_endpoint_its_events_arrive_through(tmp_path):
    error = refused(tmp_path, '[events.uploads]\nsource = "s3"\nhost = "uploads"\n')
    assert error.key == "events.uploads.source"
    assert "[triggers.sns]" in error.reason


def test_a_topic_glob_may_cover_regions_and_names_of_one_account(tmp_path):
    text = '[triggers.sns]\ntopics = ["arn:aws:sns:*:123456789012:uploads-*"]\n'
    assert load(tmp_path, text).triggers.sns.topics == ("arn:aws:sns:*:123456789012:uploads-*",)


def test_local_chains_may_map_sns_signing_cert_urls(tmp_path):
    pem = tmp_path / "chain.pem"
    pem.write_bytes(pki.sns_signer().pem)
    url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem"
    settings = load(tmp_path, f'[verification.local_chains]\n"{url}" = "{pem}"\n')
    assert url in settings.verification.local_chains


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com.evil.com/SimpleNotificationService-a.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.crt",
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem",
        "https://s3.amazonaws.com/my-bucket/SimpleNotificationService-a.pem",
    ],
)
def test_a_local_chain_no_verifier_could_ask_for_is_a_config_error(tmp_path, url):
    pem = tmp_path / "chain.pem"
    pem.write_bytes(pki.sns_signer().pem)
    error = refused(tmp_path, f'[verification.local_chains]\n"{url}" = "{pem}"\n')
    assert error.key == f'verification.local_chains."{url}"'
    assert "SigningCertURL" in error.reason


def test_the_embedded_default_enables_sns_for_the_development_topic_without_reaching_aws():
    settings = load_settings(environ={})
    sns = settings.triggers.sns
    assert sns is not None and sns.topics == (DEVELOPMENT_TOPIC,)
    assert sns.confirm == "log"  # a development confirmation never GETs AWS
    assert {name: rule.source for name, rule in settings.rules.items()} == {
        "alarms": "cloudwatch",
        "uploads": "s3",
        "deploys": "github",
        "instances": "eventbridge",
        "orders": "dynamodb",
    }


def test_in_the_embedded_default_a_rule_and_an_intent_reach_one_function_process():
    settings = load_settings(environ={})
    ports = {function.name: function.port for function in settings.functions}
    assert len(set(ports.values())) == len(ports)  # one port per function
    assert settings.rules["alarms"].route.port == ports["alarms"]
    assert settings.routes["AlarmStatusIntent"].port == ports["alarms"]
    assert settings.rules["uploads"].route.port == ports["uploads"]
    assert settings.routes["UploadsIntent"].port == ports["uploads"]
    assert settings.rules["deploys"].route.port == ports["deploys"]
    assert settings.routes["LastDeployIntent"].port == ports["deploys"]
