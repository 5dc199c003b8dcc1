"""`[events.NAME]` rules as data, and the one place that matches them against events.

A rule names a `source`, match keys (every key given must match; a list
matches when any of its values does; `*` is the only glob character), and
where its function runs: `host`, `port`, `timeout` (only shortens the
endpoint's deadline), `idempotent`, `concurrency` — the route keys of
docs/functions.md that make sense for an event. Rules are parsed here, not by
`dispatch.registry.parse_route`: intent routes carry keys (speech,
arguments, progressive...) an event has no use for, and grow on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatch.registry import Route, RouteError, parse_route
from triggers import dynamodb
from triggers.events import Event
from verification.sns import glob_pattern

#: Match keys per source (docs/events); a key a source does not know is a config error.
MATCH_KEYS: dict[str, frozenset[str]] = {
    "s3": frozenset({"topic", "bucket", "event", "key_prefix", "key_suffix"}),
    "cloudwatch": frozenset({"topic", "alarm", "state"}),
    "sns": frozenset({"topic", "subject"}),
    "eventbridge": frozenset({"event_source", "detail_type"}),
    "dynamodb": frozenset({"table", "event"}),
    "github": frozenset({"event", "repository", "ref"}),
}
#: The endpoint (`[triggers.X]` table) that delivers each source.
ENDPOINT = {
    "s3": "sns",
    "cloudwatch": "sns",
    "sns": "sns",
    "eventbridge": "eventbridge",
    "dynamodb": "eventbridge",  # a Pipe from a DynamoDB stream to an API destination
    "github": "github",
}
#: What a `dynamodb` rule's `event` may name: a stream record's eventName.
DYNAMODB_EVENTS = frozenset(dynamodb.EVENT_NAMES)
ROUTE_KEYS = frozenset({"host", "port", "timeout", "idempotent", "concurrency"})
# Rule names become metric labels and log fields: short and plain.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class RuleError(RouteError):
    """An `[events.NAME]` table is invalid; `key` names the offending key."""


@dataclass(frozen=True)
class Matcher:
    """One match key: the event field it reads and the patterns, any of which may match."""

    field: str
    patterns: tuple[re.Pattern[str], ...] = ()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        return (
            any(pattern.fullmatch(value) for pattern in self.patterns)
            or any(value.startswith(prefix) for prefix in self.prefixes)
            or any(value.endswith(suffix) for suffix in self.suffixes)
        )


@dataclass(frozen=True)
class Rule:
    """Which events one function receives, and how to call it."""

    name: str
    source: str
    route: Route
    matchers: tuple[Matcher, ...] = ()

    def matches(self, event: Event) -> bool:
        return event.source == self.source and all(
            matcher.matches(event.match.get(matcher.field)) for matcher in self.matchers
        )


def matching(rules: Iterable[Rule], event: Event) -> list[Rule]:
    """Every rule that fires for `event`, in configuration order (all of them fire)."""
    return [rule for rule in rules if rule.matches(event)]


def parse_rule(name: str, table: Mapping[str, Any], *, default_port: int) -> Rule:
    """A Rule from one `[events.NAME]` table; RuleError names the bad key."""
    if not _NAME.fullmatch(name):
        raise RuleError("-", "a rule name is 1-64 letters, digits, '_', '-' or '.'")
    source = table.get("source")
    if source not in MATCH_KEYS:
        raise RuleError("source", f"must be one of {', '.join(map(repr, MATCH_KEYS))}")
    allowed = ROUTE_KEYS | MATCH_KEYS[source] | {"source"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RuleError(
            unknown[0], f"unknown key for source {source!r} (allowed: {', '.join(sorted(allowed))})"
        )
    matchers = tuple(
        _matcher(source, key, table[key]) for key in sorted(MATCH_KEYS[source]) if key in table
    )
    return Rule(
        name=name, source=source, route=_route(name, table, default_port), matchers=matchers
    )


def _matcher(source: str, key: str, value: Any) -> Matcher:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise RuleError(key, "must be a string or a non-empty list of strings")
    if key == "key_prefix":
        return Matcher("key", prefixes=tuple(values))
    if key == "key_suffix":
        return Matcher("key", suffixes=tuple(values))
    if source == "s3" and key == "event":
        # S3's own configuration spells event types "s3:ObjectCreated:*"; records say
        # "ObjectCreated:Put". Both spellings match the record.
        values = [v.removeprefix("s3:") for v in values]
    if source == "dynamodb" and key == "event":
        unknown = [v for v in values if v not in DYNAMODB_EVENTS]
        if unknown:  # a typo here would silently match nothing, for ever
            raise RuleError(key, f"{unknown[0]!r} is not INSERT, MODIFY or REMOVE")
    # `*` stays inside one ARN field in topics, inside the owner or the name in a repository.
    within = {"topic": ":", "repository": "/"}.get(key)
    return Matcher(key, patterns=tuple(glob_pattern(v, within=within) for v in values))


def _route(name: str, table: Mapping[str, Any], default_port: int) -> Route:
    """The rule's function: the route keys of an `[intents.NAME]` table, checked the same way."""
    try:
        keys = {key: value for key, value in table.items() if key in ROUTE_KEYS}
        return parse_route(name, keys, default_port=default_port)
    except RouteError as exc:
        raise RuleError(exc.key, exc.reason) from None
