"""The event triggers' tables: `[triggers.sns]`, `[triggers.eventbridge]`, `[triggers.github]`.

An endpoint exists when its table does. EventBridge's and GitHub's
credentials are read once, at start, from a secret file or the environment;
`[events.NAME]` rules are parsed by `triggers.rules.parse_rule`, imported only
when there are some (a skill without triggers never loads the package).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from skill.settings.secrets import read_secret
from skill.settings.values import (
    ConfigError,
    Key,
    boolean,
    choice,
    int_in,
    parse_section,
    quoted,
    read_table,
    seconds_under,
    seconds_up_to,
    text,
    text_list,
)

if TYPE_CHECKING:
    from skill.settings.sections import Settings
    from triggers.rules import Rule


@dataclass(frozen=True)
class SnsTriggerSettings:
    """`[triggers.sns]`: POST /events/sns exists only when this table does."""

    topics: tuple[str, ...] = ()  # TopicArn globs; empty accepts nothing
    confirm: str = "auto"  # "auto": GET a checked SubscribeURL; "log": log it for the operator
    allow_raw: bool = False  # raw message delivery is unsigned: off unless asked for
    max_age: float = 3600.0  # replay window, and how long succeeded event ids are remembered
    deadline: float = 12.0  # every rule's function call, under SNS's 15 s
    max_body_bytes: int = 320 * 1024  # a 256 KiB message plus its envelope


@dataclass(frozen=True)
class EventBridgeTriggerSettings:
    """`[triggers.eventbridge]`: POST /events/eventbridge exists only when this table does.

    The connection authenticates one way: an API key in `api_key_header`
    (from `api_key_file` or FUNKER_DISPATCH_EVENTBRIDGE_API_KEY), or Basic
    (`username`, `password_file`). Secrets are read once, at start.
    """

    api_key_header: str = "x-api-key"
    api_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    max_age: float = 86400.0  # EventBridge retries for up to 24 h; ids remembered this long
    deadline: float = 4.0  # every rule's function call, under EventBridge's 5 s
    max_body_bytes: int = 1024 * 1024  # an event is 256 KiB at most; a Pipes batch several
    api_key: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GitHubTriggerSettings:
    """`[triggers.github]`: POST /events/github exists only when this table does.

    The webhook's secret comes from `secret_file` or FUNKER_DISPATCH_GITHUB_SECRET.
    """

    secret_file: str | None = None
    max_age: float = 86400.0  # replays of a captured delivery are caught this long
    deadline: float = 8.0  # every rule's function call, under GitHub's 10 s
    max_body_bytes: int = 25 * 1024 * 1024  # GitHub's own maximum payload
    secret: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TriggerSettings:
    sns: SnsTriggerSettings | None = None  # None: no SNS endpoint (a 404)
    eventbridge: EventBridgeTriggerSettings | None = None
    github: GitHubTriggerSettings | None = None

    @property
    def configured(self) -> bool:
        """Whether any event endpoint is on (else nothing of the triggers is even imported)."""
        return any((self.sns, self.eventbridge, self.github))


# An SNS topic ARN glob: `*` in the partition, region or name, never in the account: anyone
# can create topics in their own account and subscribe this endpoint to them.
_TOPIC_GLOB = re.compile(r"arn:[a-z*-]+:sns:[a-z0-9*-]+:[0-9]{12}:[A-Za-z0-9_.*-]+")


def topics(value: Any) -> tuple[str, ...]:
    found = text_list(value)
    for topic in found:
        if not _TOPIC_GLOB.fullmatch(topic):
            raise ValueError(
                f"{topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME, `*` "
                "allowed in REGION and NAME; the 12-digit account spelled out)"
            )
    return found


topics.bound = "list of SNS topic ARN globs (`*` in the region and name)"


SNS_TRIGGER_KEYS: dict[str, Key] = {
    "topics": Key(topics, "TopicArn globs accepted; empty accepts nothing"),
    "confirm": Key(
        choice("auto", "log"), 'a SubscriptionConfirmation: "auto" confirms it, "log" logs its URL'
    ),
    "allow_raw": Key(boolean, "accept raw message delivery, which is unsigned (unauthenticated)"),
    # SNS retries for an hour at most; a longer window only widens replays.
    "max_age": Key(seconds_up_to(3600), "older Timestamps are replays; ids are remembered so long"),
    "deadline": Key(
        seconds_under(15, "SNS waits 15 s for an answer, then retries"),
        "each rule's function call at most",
    ),
    "max_body_bytes": Key(int_in(1024, 16 * 1024 * 1024), "a delivery's body at most (413 above)"),
}
# An HTTP header name (RFC 9110 token): EventBridge sends the API key in it.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")


def header_name(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ValueError("must be an HTTP header name, such as x-api-key")
    return value


header_name.bound = "an HTTP header name"


def username(value: Any) -> str:
    if not isinstance(value, str) or not value or ":" in value or not value.isprintable():
        raise ValueError("must be a non-empty username without ':' (Basic separates on it)")
    return value


username.bound = "a username without ':'"


EVENTBRIDGE_TRIGGER_KEYS: dict[str, Key] = {
    "api_key_header": Key(header_name, "the header the API destination's connection sends"),
    "api_key_file": Key(text, "file of the API key (or FUNKER_DISPATCH_EVENTBRIDGE_API_KEY)"),
    "username": Key(username, "Basic instead of an API key: the user"),
    "password_file": Key(text, "Basic: file of the password"),
    "max_age": Key(seconds_up_to(86400), "ids remembered this long (EventBridge retries 24 h)"),
    "deadline": Key(
        seconds_under(5, "EventBridge waits 5 s for an answer, then retries"),
        "each rule's function call at most",
    ),
    "max_body_bytes": Key(int_in(1024, 16 * 1024 * 1024), "a delivery's body at most (413 above)"),
}
GITHUB_TRIGGER_KEYS: dict[str, Key] = {
    "secret_file": Key(text, "file of the webhook secret (or FUNKER_DISPATCH_GITHUB_SECRET)"),
    "max_age": Key(seconds_up_to(86400), "replays of a delivery id are caught this long"),
    "deadline": Key(
        seconds_under(10, "GitHub waits 10 s for an answer and never retries"),
        "each rule's function call at most",
    ),
    "max_body_bytes": Key(int_in(1024, 25 * 1024 * 1024), "a delivery's body at most (413 above)"),
}
# [triggers.X] tables this build serves; each X is one endpoint, POST /events/X.
TRIGGER_TABLES: dict[str, tuple[dict[str, Key], type]] = {
    "sns": (SNS_TRIGGER_KEYS, SnsTriggerSettings),
    "eventbridge": (EVENTBRIDGE_TRIGGER_KEYS, EventBridgeTriggerSettings),
    "github": (GITHUB_TRIGGER_KEYS, GitHubTriggerSettings),
}
GITHUB_SECRET_ENV = "FUNKER_DISPATCH_GITHUB_SECRET"
EVENTBRIDGE_API_KEY_ENV = "FUNKER_DISPATCH_EVENTBRIDGE_API_KEY"
TRIGGER_SECRET_ENV = frozenset({GITHUB_SECRET_ENV, EVENTBRIDGE_API_KEY_ENV})


def trigger_credentials(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The EventBridge and GitHub secrets, read now: the environment, else the file.

    A table with no credential at all is a config error naming the key to
    set; so is an empty file or variable (an unset compose variable must not
    become an empty secret that anything matches).
    """
    triggers, source = settings.triggers, settings.source
    eventbridge, github = triggers.eventbridge, triggers.github
    if eventbridge is not None:
        eventbridge = _eventbridge_credentials(eventbridge, environ, source)
    if github is not None:
        secret = read_secret(
            environ, GITHUB_SECRET_ENV, github.secret_file, "triggers.github.secret_file", source
        )
        secret = secret.encode("utf-8") if secret is not None else github.secret
        if secret is None:
            raise ConfigError(
                source,
                "triggers.github.secret_file",
                f"no webhook secret: set secret_file (a Docker secret) or {GITHUB_SECRET_ENV}",
            )
        github = replace(github, secret=secret)
    return replace(settings, triggers=replace(triggers, eventbridge=eventbridge, github=github))


def _eventbridge_credentials(
    table: EventBridgeTriggerSettings, environ: Mapping[str, str], source: str
) -> EventBridgeTriggerSettings:
    key = read_secret(
        environ,
        EVENTBRIDGE_API_KEY_ENV,
        table.api_key_file,
        "triggers.eventbridge.api_key_file",
        source,
    )
    key = key if key is not None else table.api_key
    basic = table.username is not None or table.password_file is not None
    if key is not None and basic:
        raise ConfigError(
            source,
            "triggers.eventbridge.username",
            "a connection authenticates one way: an API key or Basic (username, password_file), "
            "not both",
        )
    if key is not None:
        # WSGI hands header values over as latin-1 text; only printable ASCII survives intact.
        if not key.isascii() or not key.isprintable() or key != key.strip():
            raise ConfigError(
                source,
                "triggers.eventbridge.api_key_file",
                "the API key must be printable ASCII without leading or trailing spaces",
            )
        return replace(table, api_key=key)
    if not basic and table.password is None:
        raise ConfigError(
            source,
            "triggers.eventbridge.api_key_file",
            f"no credential: set api_key_file (or {EVENTBRIDGE_API_KEY_ENV}) for an API key "
            "connection, or username and password_file for Basic",
        )
    if table.username is None:
        raise ConfigError(source, "triggers.eventbridge.username", "password_file needs username")
    password = read_secret(
        {}, None, table.password_file, "triggers.eventbridge.password_file", source
    )
    password = password if password is not None else table.password
    if password is None:
        raise ConfigError(
            source, "triggers.eventbridge.password_file", "username needs password_file"
        )
    return replace(table, password=password)


def triggers_from_mapping(
    data: Mapping[str, Any], source: str, *, default_port: int
) -> tuple[TriggerSettings, dict[str, Rule]]:
    """`[triggers.*]` and `[events.NAME]` from a parsed TOML document."""
    tables = read_table(data, "triggers", source)
    endpoints: dict[str, Any] = {}
    for name, table in tables.items():
        if name not in TRIGGER_TABLES:
            allowed = ", ".join(TRIGGER_TABLES)
            raise ConfigError(source, f"triggers.{name}", f"unknown trigger (allowed: {allowed})")
        if not isinstance(table, Mapping):
            raise ConfigError(source, f"triggers.{name}", "must be a table")
        keys, cls = TRIGGER_TABLES[name]
        endpoints[name] = parse_section(
            {f"triggers.{name}": table}, f"triggers.{name}", keys, cls, source
        )
    rules: dict[str, Rule] = {}
    events = read_table(data, "events", source)
    if events:
        from triggers.rules import RuleError, parse_rule

        for name, table in events.items():
            key = f"events.{quoted(name)}"
            if not isinstance(table, Mapping):
                raise ConfigError(source, key, "must be a table")
            try:
                rules[name] = parse_rule(name, table, default_port=default_port)
            except RuleError as exc:
                raise ConfigError(
                    source, key if exc.key == "-" else f"{key}.{exc.key}", exc.reason
                ) from None
    return TriggerSettings(**endpoints), rules


def check_triggers(settings: Settings) -> None:
    """Rules reach an endpoint that exists; local chains are URLs some verifier can ask for;
    every endpoint's largest body fits in the share of the body budget deliveries get."""
    budget = settings.server.max_body_bytes_in_flight
    share = settings.server.event_body_budget
    for name in ("sns", "eventbridge", "github"):
        table = getattr(settings.triggers, name)
        if table is not None and table.max_body_bytes > share:
            raise ConfigError(
                settings.source,
                "server.max_body_bytes_in_flight",
                f"{budget} leaves event deliveries {share} bytes (three quarters), less than "
                f"one [triggers.{name}] body of max_body_bytes = {table.max_body_bytes}; "
                "raise it or lower that",
            )
    if settings.rules:  # imported only then: a skill without triggers never loads them
        from triggers.rules import ENDPOINT
    for name, rule in settings.rules.items():
        endpoint = ENDPOINT[rule.source]
        if getattr(settings.triggers, endpoint) is None:
            raise ConfigError(
                settings.source,
                f"events.{quoted(name)}.source",
                f"{rule.source!r} events arrive through [triggers.{endpoint}], which is not "
                "configured",
            )
    from verification.certurl import check_cert_url
    from verification.errors import CertUrlInvalid, SnsCertUrl
    from verification.snsurl import check_signing_cert_url

    for url in settings.verification.local_chains:
        try:
            check_cert_url(url)
            continue
        except CertUrlInvalid:
            pass
        try:
            check_signing_cert_url(url)
        except SnsCertUrl as exc:
            raise ConfigError(
                settings.source,
                f'verification.local_chains."{url}"',
                "neither an Alexa chain URL (https://s3.amazonaws.com/echo.api/...) nor an SNS "
                f"SigningCertURL (https://sns.<region>.amazonaws.com/....pem): {exc.detail}",
            ) from None
