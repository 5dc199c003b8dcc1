"""What a configuration value may be: one parser a kind of value, each with its bound in words.

A parser takes the TOML value or, from the environment, a string, and returns
the value or raises ValueError saying what it must be; `bound` is the same
rule for a reader (the configuration reference is generated from it). A key
is a parser and what the key is for.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

Parser = Callable[[Any], Any]


class ConfigError(ValueError):
    """Configuration is invalid; the message names file, key and reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


class Key(NamedTuple):
    """One configuration key: how its value is read, and what it is for (one line)."""

    parse: Parser
    doc: str


def bound(parser: Parser) -> str:
    """What values `parser` takes, in words."""
    return getattr(parser, "bound", "see the description")


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


boolean.bound = "true or false"


def int_in(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be an integer") from None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}")
        return value

    parse.bound = f"integer, {low:,} to {high:,}"
    return parse


def positive_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("must be a positive number")
    if not math.isfinite(value):  # TOML and float() both read inf and nan
        raise ValueError("must be a finite positive number of seconds")
    if not value > 0:
        raise ValueError("must be a positive number")
    return float(value)


def seconds_up_to(high: float) -> Parser:
    def parse(value: Any) -> float:
        seconds = positive_float(value)
        if seconds > high:
            raise ValueError(f"must be at most {high:g} seconds")
        return seconds

    parse.bound = f"seconds, above 0, at most {high:g}"
    return parse


def seconds_from_zero_under(limit: float, why: str) -> Parser:
    """Seconds, 0 included (it turns the thing off), finite, under `limit`."""

    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)  # TOML and float() both read inf and nan
            or value < 0
        ):
            raise ValueError("must be a finite number of seconds, 0 or more")
        if value >= limit:
            raise ValueError(f"must be under {limit:g} seconds ({why})")
        return float(value)

    parse.bound = f"seconds, 0 (off) to under {limit:g}"
    return parse


def origins(value: Any) -> tuple[str, ...]:
    from skill.progressive import origin  # the same rule the sender applies to apiEndpoint

    return tuple(origin(entry) for entry in text_list(value))


origins.bound = 'list of origins, "scheme://host[:port]"'


def seconds_under(limit: float, why: str) -> Parser:
    def parse(value: Any) -> float:
        seconds = positive_float(value)
        if seconds >= limit:
            raise ValueError(f"must be under {limit:g} seconds ({why})")
        return seconds

    parse.bound = f"seconds, above 0, under {limit:g}"
    return parse


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


text.bound = "string"


def text_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # environment: comma-separated
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


text_list.bound = "list of strings (environment: comma-separated)"


def networks(value: Any) -> tuple[str, ...]:
    found = text_list(value)
    for network in found:
        try:
            ipaddress.ip_network(network)
        except ValueError:
            raise ValueError(f"{network!r} is not an IP address or network") from None
    return found


networks.bound = "list of IP addresses or networks"


def choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}")
        return value

    parse.bound = " or ".join(f'"{c}"' for c in choices)
    return parse


# RFC 3986 path characters without percent-escapes: no Flask converter syntax
# ("<path:rest>"), no dot segments, nothing a router could read as a pattern.
_PLAIN_PATH = re.compile(r"/(?:[A-Za-z0-9_~!$&'()*+,;=:@-][A-Za-z0-9._~!$&'()*+,;=:@-]*/?)*")
# Served on the public listener by the dispatcher itself: the health check, the event endpoints.
_RESERVED_PATHS = ("/healthz", "/events")


def plain_path(value: Any) -> str:
    if not isinstance(value, str) or not _PLAIN_PATH.fullmatch(value):
        raise ValueError('must be a plain path such as "/" or "/alexa"')
    if any(value == p or value.startswith(p + "/") for p in _RESERVED_PATHS):
        raise ValueError(f"{value!r} is reserved for the dispatcher's own endpoints")
    return value


plain_path.bound = 'a plain path ("/", "/alexa"); not /healthz or /events/…'


def application_ids(value: Any) -> tuple[str, ...]:
    ids = text_list(value)
    for application_id in ids:
        if not application_id.startswith("amzn1."):
            raise ValueError(f"{application_id!r} is not an Alexa skill id (amzn1.ask.skill....)")
    return ids


application_ids.bound = "list of skill ids (amzn1.ask.skill.…)"


def quoted(name: str) -> str:
    """A table name as TOML writes it in a key path: quoted when it has a dot."""
    return f'"{name}"' if "." in name else name


def read_table(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    """`data[name]`, a table (empty when absent), else ConfigError."""
    table = data.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(source, name, "must be a table")
    return table


def reject_unknown(table: Mapping[str, Any], allowed: Sequence[str], key: str, source: str) -> None:
    """ConfigError naming the first key of table `key` that is not one of `allowed`."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        listed = ", ".join(allowed)
        raise ConfigError(source, f"{key}.{unknown[0]}", f"unknown key (allowed: {listed})")


def parse_section(
    data: Mapping[str, Any], name: str, keys: Mapping[str, Key], cls: type, source: str
) -> Any:
    """The dataclass `cls` of table `name`, every key parsed; ConfigError naming what is wrong."""
    values = {}
    for key, value in read_table(data, name, source).items():
        known = keys.get(key)
        if known is None:
            raise ConfigError(source, f"{name}.{key}", f"unknown key (allowed: {', '.join(keys)})")
        try:
            values[key] = known.parse(value)
        except ValueError as exc:
            raise ConfigError(source, f"{name}.{key}", str(exc)) from None
    return cls(**values)
