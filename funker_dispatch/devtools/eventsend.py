"""`funker-dispatch events send`: a realistic delivery, signed or authenticated as its sender
does it, sent on.

For SNS, what reaches the endpoint is what SNS would send: the HTTP/S
envelope (Type, MessageId, TopicArn, Subject, Message, Timestamp,
UnsubscribeURL), signed like SNS signs it (SignatureVersion 2 unless
`--signature-version 1`) by the development CA's `sns.amazonaws.com` leaf,
with SNS's headers and `text/plain`. The Message is what S3 or CloudWatch
put there:

    events send s3 --bucket photos --key "holiday/red flower.jpg"
    events send cloudwatch --alarm HighCPU --state ALARM
    events send sns --message "deploy finished" --subject Deploy
    events send --file recorded.json     # a recorded message, re-stamped and re-signed
    events send --confirm                # a SubscriptionConfirmation for --topic (s3 --confirm too)

EventBridge, a DynamoDB Pipe and GitHub (`funker_dispatch/devtools/eventsamples.py`), with the
credentials of the configuration the endpoint runs (`--config`):

    events send eventbridge --source aws.ec2 --detail-type "EC2 Instance State-change Notification"
    events send dynamodb --table Orders --event INSERT --new '{"id": 1}'
    events send github --event push --repository acme/site --ref refs/heads/main

It prints the rules the endpoint matched and each outcome. Exit status: 0
for a 2xx answer, 1 for any other HTTP answer, 2 when no usable answer came
back (one line on stderr, like the other tools).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from funker_dispatch.devtools.eventsamples import Request
from funker_dispatch.devtools.options import timeout_flag
from skill.client import EndpointError, EndpointProtocolError, EndpointUnreachable, post
from skill.settings import DEVELOPMENT_TOPIC, Settings
from skill.text import one_line
from verification.snsurl import topic_region

if TYPE_CHECKING:
    from verification.devca import DevCA

DEFAULT_URL = "http://127.0.0.1:3000/events/sns"
SNS_KINDS = ("s3", "cloudwatch", "sns")
#: Kinds sent to another endpoint than SNS's, and which one.
ENDPOINTS = {"eventbridge": "eventbridge", "dynamodb": "eventbridge", "github": "github"}
KINDS = (*SNS_KINDS, *ENDPOINTS)
#: `--event`'s default per kind.
EVENT_DEFAULTS = {"s3": "ObjectCreated:Put", "dynamodb": "INSERT", "github": "push"}
STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")


def add_parser(commands: Any) -> None:
    """`events send` on the command line (the command line's, and the console's defaults)."""
    events = commands.add_parser(
        "events", help="event trigger tools: send a realistic SNS, EventBridge or GitHub delivery"
    )
    events_commands = events.add_subparsers(dest="events_command", metavar="COMMAND")
    send = events_commands.add_parser(
        "send",
        help="send a realistic signed delivery: SNS (S3 upload, CloudWatch alarm, any message), "
        "EventBridge, a DynamoDB stream record from a Pipe, a GitHub push",
    )
    send.add_argument("kind", nargs="?", choices=KINDS, metavar="KIND", help=", ".join(KINDS))
    send.add_argument(
        "--url",
        help=f"the endpoint (default {DEFAULT_URL}, /events/eventbridge or /events/github by KIND)",
    )
    timeout_flag(send)
    send.add_argument(
        "--topic", help=f"TopicArn (default the embedded default's {DEVELOPMENT_TOPIC})"
    )
    send.add_argument("--bucket", default="photos", help="s3: bucket name (default photos)")
    send.add_argument("--key", default="red flower.jpg", help="s3: object key, as uploaded")
    send.add_argument(
        "--event",
        help="s3: eventName (default ObjectCreated:Put); dynamodb: INSERT (default), MODIFY or "
        "REMOVE; github: push (default) or ping",
    )
    send.add_argument("--size", type=int, default=1024, help="s3: object size in bytes")
    send.add_argument("--alarm", default="HighCPU", help="cloudwatch: AlarmName (default HighCPU)")
    send.add_argument(
        "--state", default="ALARM", type=str.upper, choices=STATES, help="cloudwatch: new state"
    )
    send.add_argument("--reason", help="cloudwatch: NewStateReason (default: a threshold crossed)")
    send.add_argument("--message", default="Hello from funker-dispatch", help="sns: Message")
    send.add_argument("--subject", help="sns: Subject (default none)")
    send.add_argument(
        "--file", metavar="F", help="send a recorded SNS message (JSON), re-stamped and re-signed"
    )
    send.add_argument(
        "--confirm",
        action="store_true",
        help="send a SubscriptionConfirmation for --topic (alone, or after s3, cloudwatch, sns)",
    )
    send.add_argument(
        "--signature-version", choices=("1", "2"), default="2", help="SNS SignatureVersion"
    )
    _webhook_flags(send)


def _webhook_flags(send: Any) -> None:
    """The flags of the eventbridge, dynamodb and github kinds."""
    from funker_dispatch.devtools import eventsamples

    send.add_argument(
        "--config",
        metavar="FILE",
        help="eventbridge, dynamodb, github: authenticate with this configuration's credentials "
        "(default: $FUNKER_DISPATCH_CONFIG, else the embedded default's development ones)",
    )
    send.add_argument(
        "--source",
        default=eventsamples.EC2_SOURCE,
        help=f"eventbridge: the event's source (default {eventsamples.EC2_SOURCE})",
    )
    send.add_argument(
        "--detail-type",
        default=eventsamples.EC2_STATE_CHANGE,
        help=f'eventbridge: detail-type (default "{eventsamples.EC2_STATE_CHANGE}")',
    )
    send.add_argument("--detail", metavar="JSON", help="eventbridge: detail (JSON)")
    send.add_argument("--table", default="Orders", help="dynamodb: table name (default Orders)")
    send.add_argument("--new", metavar="JSON", help="dynamodb: the new item, plain JSON")
    send.add_argument("--old", metavar="JSON", help="dynamodb: the old item, plain JSON")
    send.add_argument("--keys", metavar="JSON", help="dynamodb: the key (default the item's id)")
    send.add_argument(
        "--repository", default="acme/site", help="github: owner/name (default acme/site)"
    )
    send.add_argument(
        "--ref", default="refs/heads/main", help="github: pushed ref (default refs/heads/main)"
    )


def send_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.events_command is None:
        parser.parse_args(["events", "--help"])
    if args.file and args.confirm:
        parser.error("events send: one of --file and --confirm, not both")
    if (args.file or args.confirm) and args.kind in ENDPOINTS:
        parser.error(f"events send: --confirm and --file are for SNS ({', '.join(SNS_KINDS)})")
    if not (args.kind or args.file or args.confirm):
        parser.error(f"events send: give a KIND ({', '.join(KINDS)}), or --file or --confirm")
    if args.event is None and args.kind in EVENT_DEFAULTS:
        args.event = EVENT_DEFAULTS[args.kind]
    if args.kind in ENDPOINTS:
        return _send_webhook(args)
    args.url = args.url or DEFAULT_URL
    try:
        delivery = sns_delivery(args, datetime.now(UTC))
    except (OSError, ValueError) as exc:
        print(f"funker-dispatch events send: {exc}", file=sys.stderr)
        return 2
    print(f"POST {one_line(args.url)}: {delivery.described} (MessageId {delivery.id})")
    return _post_and_report(args.url, delivery.body, delivery.headers, args.timeout)


def sns_delivery(args: argparse.Namespace, now: datetime, ca: DevCA | None = None) -> Request:
    """What SNS would POST for `args` (the command's options): the message signed by the
    development CA's SNS leaf (`ca`, else the one in $FUNKER_DISPATCH_HOME), with SNS's
    headers. ValueError or OSError when it cannot be built (a bad recorded file)."""
    topic = args.topic or DEVELOPMENT_TOPIC
    if topic_region(topic) is None:
        raise ValueError(
            f"--topic {topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
        )
    if args.file:
        message, described = recorded(Path(args.file), args.topic, now)
    elif args.confirm:
        message, described = confirmation(topic, now), f"SubscriptionConfirmation for {topic}"
    else:
        message, described = build(args, topic, now)
    from verification.devca import DevCA

    signed = (ca or DevCA.load_or_create()).sign_sns(message, version=args.signature_version)
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",  # what SNS sends
        "x-amz-sns-message-type": signed["Type"],
        "x-amz-sns-message-id": signed["MessageId"],
        "x-amz-sns-topic-arn": signed["TopicArn"],
        "User-Agent": "Amazon Simple Notification Service Agent",
    }
    return Request(json.dumps(signed).encode("utf-8"), headers, described, signed["MessageId"])


def _send_webhook(args: argparse.Namespace) -> int:
    """eventbridge, dynamodb, github: build, authenticate with the configured credentials, send."""
    from skill.settings import ConfigError, load_settings

    endpoint = ENDPOINTS[args.kind]
    url = args.url or DEFAULT_URL.removesuffix("/sns") + f"/{endpoint}"
    try:
        built = webhook_delivery(args, load_settings(args.config), datetime.now(UTC))
    except (ConfigError, ValueError) as exc:
        print(f"funker-dispatch events send: {exc}", file=sys.stderr)
        return 2
    print(f"POST {one_line(url)}: {one_line(built.described)} (id {built.id})")
    return _post_and_report(url, built.body, built.headers, args.timeout)


def webhook_delivery(args: argparse.Namespace, settings: Settings, now: datetime) -> Request:
    """What EventBridge (an event, or a Pipe's DynamoDB batch) or GitHub would POST for
    `args`, with `settings`' credentials; ValueError when it cannot be built."""
    from funker_dispatch.devtools import eventsamples

    endpoint = ENDPOINTS[args.kind]
    table = getattr(settings.triggers, endpoint)
    if table is None:
        raise ValueError(
            f"{settings.source} has no [triggers.{endpoint}]: nothing to authenticate with"
        )
    if args.kind == "eventbridge":
        detail = eventsamples.json_option(args.detail, "--detail")
        return eventsamples.eventbridge(args.source, args.detail_type, detail, now, table)
    if args.kind == "dynamodb":
        new, old, keys = (
            eventsamples.json_option(getattr(args, flag), f"--{flag}")
            for flag in ("new", "old", "keys")
        )
        return eventsamples.dynamodb(args.table, args.event, new, old, keys, now, table)
    return eventsamples.github(args.event, args.repository, args.ref, table.secret)


def _post_and_report(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    try:
        answer = post(url, body, headers, timeout=timeout)
        try:
            result = json.loads(answer.body)
        except (ValueError, RecursionError):
            result = None
        if not isinstance(result, dict):
            raise EndpointProtocolError(
                url, f"answered HTTP {answer.status} with a body that is not a JSON object"
            )
    except EndpointError as exc:
        hint = " — is `make run` (funker-dispatch serve) running?"
        print(
            f"funker-dispatch events send: {exc}"
            + (hint if isinstance(exc, EndpointUnreachable) else ""),
            file=sys.stderr,
        )
        return 2
    for line in report(answer.status, result):
        print(line)
    return 0 if 200 <= answer.status < 300 else 1


def report(status: int, result: dict[str, Any]) -> list[str]:
    """The endpoint's answer as lines: the rules matched and each outcome, or the refusal."""
    if "error" in result:
        error, message = _text(result.get("error")), _text(result.get("message"))
        return [f"HTTP {status}: refused, {error}: {message}"]
    rules = result.get("rules") if isinstance(result.get("rules"), list) else []
    lines = []
    if "subscription" in result:
        lines.append(f"HTTP {status}: subscription {_text(result['subscription'])}")
    elif result.get("pong") is True:
        lines.append(f"HTTP {status}: pong (the ping verified; nothing dispatched)")
    elif not rules:
        lines.append(f"HTTP {status}: no rule matched")
    else:
        count = f"{len(rules)} rule{'s' if len(rules) != 1 else ''}"
        lines.append(f"HTTP {status}: {count}")
    several_ids = len({_text(r.get("id")) for r in rules if isinstance(r, dict)}) > 1
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        line = f"  {_text(rule.get('name')):<20} {_text(rule.get('outcome'))}"
        if rule.get("reason"):
            line += f" ({_text(rule['reason'])})"
        if several_ids:
            line += f"  {_text(rule.get('id'))}"
        lines.append(line)
    return lines


def _text(value: Any) -> str:
    return one_line(value if isinstance(value, str) else json.dumps(value))


# --- the messages, as S3, CloudWatch and SNS write them -----------------------------------------


def build(args: argparse.Namespace, topic: str, now: datetime) -> tuple[dict[str, Any], str]:
    region = _region(topic)
    if args.kind == "s3":
        message = s3_notification(args.bucket, args.key, args.event, args.size, region, now)
        envelope = notification(topic, json.dumps(message), now, subject="Amazon S3 Notification")
        return envelope, f"s3 {args.event} s3://{args.bucket}/{args.key}"
    if args.kind == "cloudwatch":
        alarm = cloudwatch_alarm(args.alarm, args.state, args.reason, topic, region, now)
        subject = f'{args.state}: "{args.alarm}" in {alarm["Region"]}'
        envelope = notification(topic, json.dumps(alarm), now, subject=subject[:100])
        return envelope, f"cloudwatch alarm {args.alarm} → {args.state}"
    envelope = notification(topic, args.message, now, subject=args.subject)
    return envelope, f"sns message to {topic}"


def notification(
    topic: str, message: str, now: datetime, *, subject: str | None = None
) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": _sns_time(now),
        "UnsubscribeURL": f"https://sns.{_region(topic)}.amazonaws.com/?Action=Unsubscribe"
        f"&SubscriptionArn={topic}:{uuid.uuid4()}",
    }
    if subject is not None:
        envelope["Subject"] = subject
    return envelope


def confirmation(topic: str, now: datetime) -> dict[str, Any]:
    token = secrets.token_hex(64)
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": f"https://sns.{_region(topic)}.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={topic}&Token={token}",
        "Timestamp": _sns_time(now),
    }


def s3_notification(
    bucket: str, key: str, event: str, size: int, region: str, now: datetime
) -> dict[str, Any]:
    """One S3 event record as S3 sends it; the key URL-encoded as S3 encodes it (space is +)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": _sns_time(now),
                "eventName": event.removeprefix("s3:"),
                "userIdentity": {"principalId": "AWS:AIDAFUNKERDISPATCHDEV"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": secrets.token_hex(8).upper(),
                    "x-amz-id-2": secrets.token_urlsafe(48),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "funker-dispatch",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A1FUNKERDISPATCHDEV"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": secrets.token_hex(16),
                        "sequencer": secrets.token_hex(9).upper(),
                    },
                },
            }
        ]
    }


def cloudwatch_alarm(
    name: str, state: str, reason: str | None, topic: str, region: str, now: datetime
) -> dict[str, Any]:
    """An alarm state change as CloudWatch publishes it to SNS."""
    account = topic.split(":")[4] if topic.count(":") >= 5 else "123456789012"
    crossed = "greater than" if state == "ALARM" else "not greater than"
    return {
        "AlarmName": name,
        "AlarmDescription": f"{name} (sent by funker-dispatch events send)",
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _cloudwatch_time(now),
        "NewStateValue": state,
        "NewStateReason": reason
        or "Threshold Crossed: 1 out of the last 1 datapoints [92.5 ("
        f"{now:%d/%m/%y %H:%M:%S})] was {crossed} the threshold (80.0) "
        "(minimum 1 datapoint for OK -> ALARM transition).",
        "StateChangeTime": _cloudwatch_time(now),
        "Region": _REGION_NAMES.get(region, region),
        "AlarmArn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
        "OldStateValue": "OK" if state != "OK" else "ALARM",
        "OKActions": [],
        "AlarmActions": [topic],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/EC2",
            "StatisticType": "Statistic",
            "Statistic": "AVERAGE",
            "Unit": None,
            "Dimensions": [{"value": "i-0123456789abcdef0", "name": "InstanceId"}],
            "Period": 300,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 80.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def recorded(path: Path, topic: str | None, now: datetime) -> tuple[dict[str, Any], str]:
    """A recorded SNS message, stamped now (and for `topic` when given), to be signed again."""
    message = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(message, dict) or not isinstance(message.get("Type"), str):
        raise ValueError(f"{path} does not hold an SNS message (a JSON object with a Type)")
    message = {
        k: v for k, v in message.items() if k not in ("Signature", "SigningCertURL")
    }  # signed anew by the dev CA
    message["Timestamp"] = _sns_time(now)
    if topic:
        message["TopicArn"] = topic
    return message, f"{message['Type']} from {path.name}"


def _region(topic: str) -> str:
    """The topic's region; sns_delivery has made sure `topic` is an SNS topic ARN."""
    return topic_region(topic) or "us-east-1"


def _sns_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _cloudwatch_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}
