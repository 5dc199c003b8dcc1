"""What EventBridge, a Pipe from DynamoDB and GitHub send, built for `events send`, and signed or
authenticated the way those senders do it with the configured credentials.

- `eventbridge`: one event envelope, as a rule's API destination target
  POSTs it, with the connection's API key header or Basic credentials.
- `dynamodb`: one DynamoDB Streams record, as a Pipe POSTs it to an API
  destination (once per record: API destinations are not a batching target,
  so no array): the item given as plain JSON, written in DynamoDB's typed JSON.
- `github`: GitHub's documented push sample (baxterthehacker's "Update
  README.md"), for the repository and ref asked for, or a ping; signed with
  the webhook secret in both X-Hub-Signature-256 and the legacy SHA-1
  header, as GitHub sends them.

Credentials come from the configuration the endpoint runs with (`--config`,
else $FUNKER_DISPATCH_CONFIG, else the embedded default's development ones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skill.settings import EventBridgeTriggerSettings
from triggers.dynamodb import EVENT_NAMES
from triggers.events import parse_json
from verification.github import signature

ACCOUNT = "123456789012"
REGION = "us-east-1"
EC2_SOURCE = "aws.ec2"
EC2_STATE_CHANGE = "EC2 Instance State-change Notification"
API_DESTINATION_AGENT = "Amazon/EventBridge/ApiDestinations"
GITHUB_AGENT = "GitHub-Hookshot/044aadd"
HOOK_ID = "292430182"
DYNAMODB_EVENTS = EVENT_NAMES  # what a stream record may name


@dataclass(frozen=True)
class Request:
    """One POST as its sender makes it: the body bytes, headers, and a line saying what it is."""

    body: bytes
    headers: dict[str, str]
    described: str
    id: str


def json_option(text: str | None, flag: str) -> Any:
    """A JSON command-line value (strict: no NaN), or ValueError naming the flag."""
    if text is None:
        return None
    try:
        return parse_json(text.encode("utf-8"))
    except (ValueError, RecursionError):
        raise ValueError(f"{flag} is not JSON: {text[:60]!r}") from None


# --- EventBridge ---------------------------------------------------------------------------------


def eventbridge_envelope(
    source: str, detail_type: str, detail: Any, now: datetime
) -> dict[str, Any]:
    """An event as EventBridge delivers it to an API destination (the rule passes it whole)."""
    if detail is None:
        detail = (
            {"instance-id": "i-0123456789abcdef0", "state": "running"}
            if (source, detail_type) == (EC2_SOURCE, EC2_STATE_CHANGE)
            else {}
        )
    resources = (
        [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{detail['instance-id']}"]
        if source == EC2_SOURCE and isinstance(detail, dict) and "instance-id" in detail
        else []
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def connection_headers(table: EventBridgeTriggerSettings) -> dict[str, str]:
    """The headers an API destination sends with the connection's credential."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": API_DESTINATION_AGENT,
    }
    if table.api_key is not None:
        headers[table.api_key_header] = table.api_key
    else:
        pair = f"{table.username}:{table.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def eventbridge(
    source: str, detail_type: str, detail: Any, now: datetime, table: EventBridgeTriggerSettings
) -> Request:
    envelope = eventbridge_envelope(source, detail_type, detail, now)
    return Request(
        json.dumps(envelope).encode("utf-8"),
        connection_headers(table),
        f'eventbridge {source} "{detail_type}"',
        envelope["id"],
    )


# --- DynamoDB through a Pipe -------------------------------------------------------------------


def to_dynamodb(value: Any) -> dict[str, Any]:
    """A plain JSON value in DynamoDB's typed JSON (the inverse of `triggers.dynamodb.plain`)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [to_dynamodb(member) for member in value]}
    if isinstance(value, dict):
        return {"M": {name: to_dynamodb(member) for name, member in value.items()}}
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def dynamodb_record(
    table: str,
    event: str,
    new: dict[str, Any] | None,
    old: dict[str, Any] | None,
    keys: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """A DynamoDB Streams record (NEW_AND_OLD_IMAGES) as a Pipe passes it on."""
    if event not in DYNAMODB_EVENTS:
        raise ValueError(f"--event for dynamodb is one of {', '.join(DYNAMODB_EVENTS)}")
    if event == "INSERT":
        new, old = new if new is not None else {"id": 1}, None
    elif event == "REMOVE":
        new, old = None, old if old is not None else (new or {"id": 1})
    else:
        new = new if new is not None else {"id": 1}
        old = old if old is not None else new
    for flag, image in (("--new", new), ("--old", old), ("--keys", keys)):
        if image is not None and not isinstance(image, dict):
            raise ValueError(f"{flag} is a JSON object of attributes")
    if keys is None:
        image = new if new is not None else old or {}
        name = "id" if "id" in image else next(iter(image), None)
        if name is None:
            raise ValueError("give --keys: the item has no attribute to key it by")
        keys = {name: image[name]}
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": int(now.timestamp()),
        "Keys": {name: to_dynamodb(value) for name, value in keys.items()},
    }
    if new is not None:
        stream["NewImage"] = {name: to_dynamodb(value) for name, value in new.items()}
    if old is not None:
        stream["OldImage"] = {name: to_dynamodb(value) for name, value in old.items()}
    stream |= {
        "SequenceNumber": str(secrets.randbelow(10**21) + 10**20),
        "SizeBytes": len(json.dumps([stream.get("Keys"), new, old])),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": stream,
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/"
        f"{now:%Y-%m-%d}T00:00:00.000",
    }


def dynamodb(
    table_name: str,
    event: str,
    new: Any,
    old: Any,
    keys: Any,
    now: datetime,
    table: EventBridgeTriggerSettings,
) -> Request:
    record = dynamodb_record(table_name, event, new, old, keys, now)
    return Request(
        # A Pipe calls an API destination once per record (it cannot batch to one).
        json.dumps(record).encode("utf-8"),
        connection_headers(table),
        f"dynamodb {event} on {table_name}, one stream record as a Pipe sends it",
        record["eventID"],
    )


# --- GitHub --------------------------------------------------------------------------------------


def github(event: str, repository: str, ref: str, secret: bytes) -> Request:
    """A push (GitHub's documented sample, for `repository` and `ref`) or a ping, signed."""
    if event == "push":
        document, described = github_push(repository, ref), f"github push to {repository} {ref}"
    elif event == "ping":
        document, described = github_ping(repository), f"github ping from {repository}"
    else:
        raise ValueError("github samples are push and ping (--event push or --event ping)")
    body = json.dumps(document, indent=2).encode("utf-8")  # GitHub pretty-prints its JSON
    delivery = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": GITHUB_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": HOOK_ID,
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": "35129377",
        # GitHub sends both when a secret is set; the dispatcher reads only the SHA-256 one.
        "X-Hub-Signature": "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": signature(secret, body),
    }
    return Request(body, headers, described, delivery)


def _repository(full_name: str) -> dict[str, Any]:
    owner, _, name = full_name.partition("/")
    api = f"https://api.github.com/repos/{full_name}"
    return {
        "id": 35129377,
        "name": name,
        "full_name": full_name,
        "owner": {"name": owner, "email": f"{owner}@users.noreply.github.com"},
        "private": False,
        "html_url": f"https://github.com/{full_name}",
        "description": "",
        "fork": False,
        "url": f"https://github.com/{full_name}",
        "hooks_url": f"{api}/hooks",
        "commits_url": f"{api}/commits{{/sha}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "created_at": 1430869212,
        "updated_at": "2015-05-05T23:40:12Z",
        "pushed_at": 1430869217,
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": True,
        "forks_count": 0,
        "mirror_url": None,
        "open_issues_count": 0,
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": "main",
        "stargazers": 0,
        "master_branch": "main",
    }


_BAXTER = {
    "name": "baxterthehacker",
    "email": "baxterthehacker@users.noreply.github.com",
    "username": "baxterthehacker",
}
_SENDER = {
    "login": "baxterthehacker",
    "id": 6752317,
    "avatar_url": "https://avatars.githubusercontent.com/u/6752317?v=3",
    "url": "https://api.github.com/users/baxterthehacker",
    "html_url": "https://github.com/baxterthehacker",
    "type": "User",
    "site_admin": False,
}


def github_push(repository: str, ref: str) -> dict[str, Any]:
    """GitHub's documented push event sample (one commit, "Update README.md") for `repository`."""
    commit = {
        "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": "Update README.md",
        "timestamp": "2015-05-05T19:40:15-04:00",
        "url": f"https://github.com/{repository}/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "author": dict(_BAXTER),
        "committer": dict(_BAXTER),
        "added": [],
        "removed": [],
        "modified": ["README.md"],
    }
    return {
        "ref": ref,
        "before": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
        "after": commit["id"],
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repository}/compare/9049f1265b7d...0d1a26e67d8f",
        "commits": [commit],
        "head_commit": dict(commit),
        "repository": _repository(repository),
        "pusher": {"name": _BAXTER["name"], "email": _BAXTER["email"]},
        "sender": dict(_SENDER),
    }


def github_ping(repository: str) -> dict[str, Any]:
    """What GitHub sends once when a webhook is created."""
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": int(HOOK_ID),
        "hook": {
            "type": "Repository",
            "id": int(HOOK_ID),
            "name": "web",
            "active": True,
            "events": ["push"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://example.com"},
        },
        "repository": _repository(repository),
        "sender": dict(_SENDER),
    }
