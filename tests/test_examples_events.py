"""The event examples: `alarms`, `uploads` and `deploys` remember what SNS or GitHub brought and
tell Alexa about it.

Each runs as a real process, asked over the funker protocol first with the
event payload the dispatcher sends (docs/events/index.md), then with an Alexa request.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_examples import load_function, start_function  # noqa: F401 (fixture)

EVENTS = Path(__file__).parent / "fixtures" / "events"
ALARM = json.loads((EVENTS / "cloudwatch-alarm.json").read_text())
S3_RECORD = json.loads((EVENTS / "s3-two-records.json").read_text())["Records"][0]
NOW = datetime(2030, 6, 1, 12, 3, 30, tzinfo=UTC)

alarms = load_function("alarms")
uploads = load_function("uploads")


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def alarm_event(name: str = "HighCPU", state: str = "ALARM", changed: datetime = NOW, **extra):
    alarm = {
        **ALARM,
        "AlarmName": name,
        "NewStateValue": state,
        "StateChangeTime": stamp(changed),
        **extra,
    }
    return {
        "trigger": "cloudwatch",
        "rule": "alarms",
        "id": f"msg-{name}-{state}-{changed:%H%M%S}",
        "time": changed.isoformat(),
        "event": alarm,
        "attributes": {"topic": "arn:aws:sns:us-east-1:123456789012:alarms"},
    }


def upload_event(key: str, *, bucket: str = "photos", at: datetime = NOW, n: int = 0):
    record = {**S3_RECORD, "eventTime": at.isoformat()}
    return {
        "trigger": "s3",
        "rule": "uploads",
        "id": f"msg-{key}#{n}",
        "time": at.isoformat(),
        "event": record,
        "attributes": {},
        "s3": {"bucket": bucket, "key": key},
    }


def alexa(intent: str) -> dict[str, Any]:
    return {
        "version": "1.0",
        "request": {"type": "IntentRequest", "intent": {"name": intent, "slots": {}}},
    }


# --- alarms ---------------------------------------------------------------------------------


def test_alarms_says_which_alarm_went_where_and_when():
    store = alarms.Alarms()
    store.remember(alarms.alarm_from_event(alarm_event(changed=NOW - timedelta(minutes=4))))
    answer = alarms.status(store.newest_first(), NOW)
    assert (
        answer["speech"] == "The alarm HighCPU went to ALARM four minutes ago: Threshold Crossed."
    )
    assert "greater than the threshold (80.0)" in answer["card"]["content"]


def test_alarms_speaks_the_newest_change_and_names_the_others_not_ok():
    store = alarms.Alarms()
    store.remember(
        alarms.alarm_from_event(alarm_event("DiskFull", changed=NOW - timedelta(hours=2)))
    )
    store.remember(
        alarms.alarm_from_event(alarm_event("Latency", "OK", changed=NOW - timedelta(hours=3)))
    )
    store.remember(
        alarms.alarm_from_event(alarm_event("HighCPU", "OK", changed=NOW - timedelta(seconds=20)))
    )
    speech = alarms.status(store.newest_first(), NOW)["speech"]
    assert speech.startswith("The alarm HighCPU went to OK less than a minute ago")
    assert speech.endswith("DiskFull is not OK either.")


def test_alarms_keeps_the_newest_state_when_an_older_change_is_redelivered():
    store = alarms.Alarms()
    store.remember(alarms.alarm_from_event(alarm_event(state="OK", changed=NOW)))
    store.remember(alarms.alarm_from_event(alarm_event(changed=NOW - timedelta(minutes=5))))
    assert [a.state for a in store.newest_first()] == ["OK"]


def test_alarms_remembers_a_bounded_number():
    store = alarms.Alarms(limit=2)
    for minute in range(3):
        store.remember(
            alarms.alarm_from_event(
                alarm_event(f"A{minute}", changed=NOW + timedelta(minutes=minute))
            )
        )
    assert [a.name for a in store.newest_first()] == ["A2", "A1"]


@pytest.mark.parametrize(
    ("seconds", "spoken"),
    [
        (5, "less than a minute ago"),
        (60, "one minute ago"),
        (21 * 60, "twenty-one minutes ago"),
        (2 * 3600 + 59, "two hours ago"),
        (3 * 86400, "three days ago"),
        (150 * 86400, "150 days ago"),
    ],
)
def test_alarms_says_how_long_ago_in_words(seconds, spoken):
    assert alarms.ago(NOW - timedelta(seconds=seconds), NOW) == spoken


def test_alarms_with_nothing_reported_says_so():
    assert alarms.status([], NOW)["speech"] == "No alarm has been reported yet."


def test_alarms_ignores_events_that_carry_no_alarm():
    assert alarms.alarm_from_event({"trigger": "cloudwatch", "event": "text"}) is None
    assert alarms.alarm_from_event({"trigger": "cloudwatch", "event": {"AlarmName": 3}}) is None


def test_the_alarms_process_remembers_an_event_and_answers_alexa(start_function):  # noqa: F811
    running = start_function("alarms")
    changed = datetime.now(UTC) - timedelta(minutes=4, seconds=10)
    assert running.call(alarm_event(changed=changed)) == {"remembered": "HighCPU"}
    assert running.call({"trigger": "s3", "id": "x"}) == {"remembered": None}
    answer = running.call(alexa("AlarmStatusIntent"))
    assert (
        answer["speech"] == "The alarm HighCPU went to ALARM four minutes ago: Threshold Crossed."
    )


# --- uploads --------------------------------------------------------------------------------


def test_uploads_counts_todays_files_in_the_latest_bucket():
    store = uploads.Uploads()
    for n, key in enumerate(["a.txt", "b.txt", "holiday/red flower.jpg"]):
        store.remember(uploads.upload_from_event(upload_event(key, at=NOW + timedelta(seconds=n))))
    store.remember(uploads.upload_from_event(upload_event("old.jpg", at=NOW - timedelta(days=1))))
    store.remember(
        uploads.upload_from_event(upload_event("x.log", bucket="logs", at=NOW - timedelta(hours=1)))
    )
    answer = uploads.today(store.newest_first(), NOW + timedelta(minutes=1))
    assert answer["speech"] == "Three new files in photos today, the latest is red flower.jpg."
    assert "photos/holiday/red flower.jpg" in answer["card"]["content"]


def test_uploads_counts_a_redelivered_event_once():
    store = uploads.Uploads()
    event = upload_event("red flower.jpg")
    store.remember(uploads.upload_from_event(event))
    store.remember(uploads.upload_from_event(event))
    assert uploads.today(store.newest_first(), NOW)["speech"] == (
        "One new file in photos today: red flower.jpg."
    )


def test_uploads_with_nothing_today_names_the_last_one():
    store = uploads.Uploads()
    store.remember(uploads.upload_from_event(upload_event("a.jpg", at=NOW - timedelta(days=2))))
    assert uploads.today(store.newest_first(), NOW)["speech"] == (
        "No new files today. The last one was a.jpg in photos, on May 30."
    )
    assert uploads.today([], NOW)["speech"] == "No files have been uploaded yet."


def test_uploads_remembers_a_bounded_number():
    store = uploads.Uploads(limit=2)
    for n in range(3):
        store.remember(uploads.upload_from_event(upload_event(f"{n}.jpg", n=n)))
    assert sorted(u.key for u in store.newest_first()) == ["1.jpg", "2.jpg"]


def test_uploads_ignores_events_without_bucket_and_key():
    assert uploads.upload_from_event({"trigger": "s3", "id": "x", "s3": {"bucket": "b"}}) is None


def test_the_uploads_process_remembers_events_and_answers_alexa(start_function):  # noqa: F811
    running = start_function("uploads")
    now = datetime.now(UTC)
    for n, key in enumerate(["one.jpg", "two.jpg", "holiday/red flower.jpg"]):
        event = upload_event(key, at=now - timedelta(seconds=3 - n), n=n)
        assert running.call(event) == {"remembered": event["id"]}
    answer = running.call(alexa("UploadsIntent"))
    if now.date() == (now - timedelta(seconds=3)).date():  # not straddling midnight UTC
        assert answer["speech"] == "Three new files in photos today, the latest is red flower.jpg."


# --- deploys ----------------------------------------------------------------------------------

deploys = load_function("deploys")
PUSH = {
    "ref": "refs/heads/main",
    "deleted": False,
    "compare": "https://github.com/acme/site/compare/9049f1265b7d...0d1a26e67d8f",
    "commits": [{"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}],
    "head_commit": {
        "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "message": "Update README.md",
    },
    "repository": {"full_name": "acme/site"},
    "pusher": {"name": "baxterthehacker", "email": "baxterthehacker@users.noreply.github.com"},
}


def push_event(delivery: str = "d-1", at: datetime = NOW, **changes: Any) -> dict[str, Any]:
    return {
        "trigger": "github",
        "rule": "deploys",
        "id": delivery,
        "time": at.isoformat(),
        "event": {**PUSH, **changes},
        "attributes": {"event": "push", "delivery": delivery, "hook_id": 1},
    }


def test_deploys_says_who_pushed_what_where():
    store = deploys.Deploys()
    store.remember(deploys.push_from_event(push_event()))
    answer = deploys.last_deploy(store.last())
    assert answer["speech"] == (
        "The last push to acme/site main was by baxterthehacker: Update README.md."
    )
    assert "0d1a26e Update README.md" in answer["card"]["content"]
    assert "1 commit," in answer["card"]["content"]


def test_deploys_speaks_the_newest_push_and_a_redelivery_never_becomes_the_newest():
    store = deploys.Deploys()
    first, second = push_event("d-1"), push_event("d-2", ref="refs/tags/v1.2")
    second["event"]["head_commit"] = {"id": "abc1234", "message": "Release 1.2!\n\nNotes..."}
    for event in (first, second):
        assert store.remember(deploys.push_from_event(event))
    assert not store.remember(deploys.push_from_event(first))  # redelivered from GitHub's UI
    assert deploys.last_deploy(store.last())["speech"] == (
        "The last push to acme/site tag v1.2 was by baxterthehacker: Release 1.2!"
    )


def test_deploys_says_when_a_push_deleted_a_branch():
    event = push_event(ref="refs/heads/old", deleted=True, head_commit=None, commits=[])
    answer = deploys.last_deploy(deploys.push_from_event(event))
    assert answer["speech"] == "The last push, by baxterthehacker, deleted acme/site old."


def test_deploys_remembers_a_bounded_number():
    store = deploys.Deploys(limit=2)
    for n in range(3):
        store.remember(deploys.push_from_event(push_event(f"d-{n}")))
    assert store.last().id == "d-2" and len(store._pushes) == 2


def test_deploys_ignores_what_is_not_a_push():
    assert deploys.push_from_event({**push_event(), "attributes": {"event": "release"}}) is None
    assert deploys.push_from_event({**push_event(), "event": {"ref": "x"}}) is None
    assert deploys.handle({"trigger": "dynamodb", "id": "r"}) == {"remembered": None}
    assert deploys.last_deploy(None)["speech"] == "No push has been reported yet."


def test_a_long_commit_message_is_cut_at_a_word_for_speech():
    spoken = deploys.spoken("word " * 100)
    assert len(spoken) <= deploys.MAX_SPOKEN + 1 and spoken.endswith("…")


def test_the_deploys_process_remembers_a_push_and_answers_alexa(start_function):  # noqa: F811
    running = start_function("deploys")
    assert running.call(push_event("d-live")) == {"remembered": "d-live"}
    assert running.call(push_event("d-live")) == {"remembered": None}  # a replay
    assert running.call({"trigger": "eventbridge", "id": "e"}) == {"remembered": None}
    answer = running.call(alexa("LastDeployIntent"))
    assert answer["speech"] == (
        "The last push to acme/site main was by baxterthehacker: Update README.md."
    )


@pytest.mark.parametrize("name", ["alarms", "uploads", "deploys"])
def test_the_stack_runs_each_stateful_example_as_one_replica_on_the_funker_network(name):
    import yaml

    stack = yaml.safe_load((Path(__file__).parents[1] / "docker-stack.yml").read_text())
    service = stack["services"][name]
    assert service["image"] == f"${{REGISTRY:-}}funker-dispatch/{name}:${{TAG:-latest}}"
    assert service["build"]["dockerfile"] == f"examples/functions/{name}/Dockerfile"
    assert service["deploy"]["replicas"] == 1  # its memory is the state Alexa asks about
    assert service["networks"] == ["funker"] and "ports" not in service
