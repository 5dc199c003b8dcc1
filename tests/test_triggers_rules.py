"""`[events.NAME]` rules: parsed strictly, matched in one place, every key given must match."""

from __future__ import annotations

import pytest

from triggers.events import Event
from triggers.rules import RuleError, matching, parse_rule

TOPIC = "arn:aws:sns:us-east-1:123456789012:uploads"


def rule(name: str = "r", **table):
    table.setdefault("host", "uploads")
    return parse_rule(name, table, default_port=9999)


def s3(key: str = "photos/red flower.jpg", bucket: str = "photos", name: str = "ObjectCreated:Put"):
    return Event(
        "s3",
        "m#0",
        "t",
        {},
        {},
        match={"topic": TOPIC, "bucket": bucket, "event": name, "key": key},
    )


def alarm(state: str = "ALARM", name: str = "HighCPU"):
    return Event(
        "cloudwatch", "a", "t", {}, {}, match={"topic": TOPIC, "alarm": name, "state": state}
    )


def test_a_rule_carries_its_route_with_the_endpoint_default_port():
    parsed = rule("uploads", source="s3", timeout=2, idempotent=True, concurrency=1)
    assert (parsed.name, parsed.source) == ("uploads", "s3")
    route = parsed.route
    assert (route.name, route.host, route.port) == ("uploads", "uploads", 9999)
    assert (route.timeout, route.idempotent, route.concurrency) == (2.0, True, 1)


def test_a_rule_without_match_keys_takes_every_event_of_its_source():
    assert rule(source="s3").matches(s3())
    assert not rule(source="s3").matches(alarm())
    assert not rule(source="sns").matches(s3())  # sns is exclusive: s3 events never fire it


def test_every_key_given_must_match():
    both = rule(source="s3", bucket="photos", key_suffix=".jpg")
    assert both.matches(s3())
    assert not both.matches(s3(key="photos/a.png"))
    assert not both.matches(s3(bucket="logs"))


def test_globs_and_lists():
    assert rule(source="s3", bucket="pho*").matches(s3())
    assert rule(source="s3", event="ObjectCreated:*").matches(s3())
    assert rule(source="s3", event="s3:ObjectCreated:*").matches(s3())  # S3's own spelling
    assert not rule(source="s3", event="ObjectRemoved:*").matches(s3())
    states = rule(source="cloudwatch", state=["ALARM", "INSUFFICIENT_DATA"])
    assert states.matches(alarm()) and not states.matches(alarm("OK"))
    assert rule(source="cloudwatch", alarm="High*").matches(alarm())
    assert not rule(source="cloudwatch", alarm="high*").matches(alarm())  # case matters


def test_key_prefix_and_suffix_are_literal_on_the_decoded_key():
    assert rule(source="s3", key_prefix="photos/red ").matches(s3())
    assert not rule(source="s3", key_prefix="photos/*").matches(s3())
    assert rule(source="s3", key_suffix=[".png", ".jpg"]).matches(s3())


def test_a_topic_glob_stays_in_one_arn_field():
    assert rule(source="s3", topic="arn:aws:sns:*:123456789012:uploads").matches(s3())
    assert not rule(source="s3", topic="arn:aws:sns:*").matches(s3())


def test_matching_returns_every_rule_that_fires_in_order():
    rules = [
        rule("a", source="s3"),
        rule("b", source="cloudwatch"),
        rule("c", source="s3", key_suffix=".jpg"),
    ]
    assert [r.name for r in matching(rules, s3())] == ["a", "c"]
    assert matching(rules, s3(key="x.txt"))[0].name == "a"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"source": "s4"}, "source"),
        ({}, "source"),
        ({"source": "s3", "alarm": "x"}, "alarm"),  # a key of another source
        ({"source": "s3", "speech": "x"}, "speech"),  # an intent route key
        ({"source": "s3", "host": "no such host!"}, "host"),
        ({"source": "s3", "port": 0}, "port"),
        ({"source": "s3", "port": True}, "port"),
        ({"source": "s3", "timeout": 0}, "timeout"),
        ({"source": "s3", "timeout": float("inf")}, "timeout"),
        ({"source": "s3", "timeout": 61}, "timeout"),
        ({"source": "s3", "idempotent": "yes"}, "idempotent"),
        ({"source": "s3", "concurrency": 0}, "concurrency"),
        ({"source": "s3", "bucket": []}, "bucket"),
        ({"source": "s3", "bucket": 5}, "bucket"),
        ({"source": "cloudwatch", "state": ["ALARM", 1]}, "state"),
    ],
)
def test_bad_tables_name_the_key(table, key):
    table.setdefault("host", "uploads")
    with pytest.raises(RuleError) as refused:
        parse_rule("r", table, default_port=9999)
    assert refused.value.key == key


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "new\nline"])
def test_rule_names_are_short_and_plain(name):
    with pytest.raises(RuleError):
        parse_rule(name, {"source": "s3", "host": "uploads"}, default_port=9999)


# --- EventBridge, DynamoDB and GitHub (docs/events/index.md) --------------------------------------


def envelope(source: str = "aws.ec2", detail_type: str = "EC2 Instance State-change Notification"):
    match = {"event_source": source, "detail_type": detail_type}
    return Event("eventbridge", "e", "t", {}, {}, match=match)


def record(table: str = "Orders", name: str = "INSERT"):
    return Event("dynamodb", "d", "t", {}, {}, match={"table": table, "event": name})


def push(repository: str = "acme/site", ref: str = "refs/heads/main", name: str = "push"):
    match = {"event": name, "repository": repository, "ref": ref}
    return Event("github", "g", "t", {}, {}, match=match)


def test_eventbridge_rules_match_source_and_detail_type():
    assert rule(source="eventbridge", event_source="aws.*").matches(envelope())
    assert rule(source="eventbridge", detail_type="EC2 *").matches(envelope())
    assert not rule(source="eventbridge", event_source="aws.s3").matches(envelope())
    assert not rule(source="eventbridge").matches(record())  # dynamodb is its own source


def test_dynamodb_rules_match_table_and_event_names():
    orders = rule(source="dynamodb", table="Orders", event=["INSERT", "MODIFY"])
    assert orders.matches(record()) and orders.matches(record(name="MODIFY"))
    assert not orders.matches(record(name="REMOVE"))
    assert not orders.matches(record(table="Customers"))


def test_a_dynamodb_event_name_that_can_never_match_is_a_config_error():
    with pytest.raises(RuleError) as error:
        rule(source="dynamodb", event="ObjectCreated:*")
    assert error.value.key == "event"


def test_github_rules_match_event_repository_and_ref():
    main = rule(source="github", event="push", repository="acme/*", ref="refs/heads/main")
    assert main.matches(push())
    assert not main.matches(push(ref="refs/heads/feature"))
    assert not main.matches(push(repository="acme/site/extra"))  # `*` stays in the name
    assert not main.matches(push(name="release"))
    assert rule(source="github", ref="refs/heads/*").matches(push(ref="refs/heads/feat/x"))
    assert not rule(source="github", event="s3:push").matches(push())  # no s3: prefix here


def test_keys_of_another_source_are_refused():
    with pytest.raises(RuleError) as error:
        rule(source="github", table="Orders")
    assert error.value.key == "table"
