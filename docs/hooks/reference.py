"""mkdocs hook: the configuration and command-line references, generated from the code at build.

A page holding `<!-- generated: configuration -->` or `<!-- generated: cli -->`
gets the tables of every configuration key (from `skill/settings/`: default,
values, environment variable, what it is for) or every command's help (from
the argparse parser the console script builds), so neither can drift from the
code. A route key with no description here fails the build.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

#: `[intents.NAME]` keys, for the reader: `dispatch.registry.ROUTE_KEYS` must be exactly these.
ROUTE_KEYS = {
    "host": "the function's host (a swarm service name, an address)",
    "port": "its port (default `[dispatch] function_port`, 9999)",
    "timeout": "seconds the call may take; only ever shortens `[dispatch] deadline`",
    "arguments": 'top-level request keys sent (e.g. `["session", "request", "version"]`)',
    "idempotent": "the call may be sent again after the payload went out",
    "concurrency": "calls in flight to this route from one dispatcher process, at most",
    "speech": "template for a data answer: a string, or a table by locale",
    "probe": '`"connect"`: `/intents?probe=1` may open a TCP connection to it',
    "progressive": "this route's progressive response text (a string, or a table by locale)",
    "progressive_after": "seconds before it is sent (0: never for this route)",
    "description": "what the intent's MCP tool does, for an AI agent (default: from its samples)",
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- generated: configuration -->" in markdown:
        markdown = markdown.replace("<!-- generated: configuration -->", configuration())
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", command_line())
    return markdown


def configuration() -> str:
    from dispatch.registry import ROUTE_KEYS as CODE_ROUTE_KEYS
    from skill.settings import sections, triggers
    from skill.settings.load import ENV_PREFIX
    from triggers.rules import MATCH_KEYS
    from triggers.rules import ROUTE_KEYS as RULE_ROUTE_KEYS

    if set(ROUTE_KEYS) != set(CODE_ROUTE_KEYS):
        differ = sorted(set(CODE_ROUTE_KEYS) ^ set(ROUTE_KEYS))
        raise ValueError(f"route keys to describe, or no longer keys: {differ}")
    tables = [
        ("server", sections.SERVER_KEYS, sections.ServerSettings, f"{ENV_PREFIX}SERVER_"),
        ("skill", sections.SKILL_KEYS, sections.SkillSettings, ENV_PREFIX),
        ("dispatch", sections.DISPATCH_KEYS, sections.DispatchSettings, ENV_PREFIX),
        ("verification", sections.VERIFICATION_KEYS, sections.VerificationSettings, None),
        ("console", sections.CONSOLE_KEYS, sections.ConsoleSettings, None),
    ]
    parts = []
    for name, keys, cls, env in tables:
        parts.append(section(name, keys, cls, env))
    parts.append(
        "## [verification.local_chains]\n\n"
        "A table of certificate chain URL → PEM file: the chain is read from the file "
        "instead of fetched. Alexa's (`https://s3.amazonaws.com/echo.api/…`) and SNS's "
        "(`https://sns.<region>.amazonaws.com/….pem`) URLs only.\n"
    )
    secrets = {
        "eventbridge": {"api_key_file": triggers.EVENTBRIDGE_API_KEY_ENV},
        "github": {"secret_file": triggers.GITHUB_SECRET_ENV},
    }
    for name, (keys, cls) in triggers.TRIGGER_TABLES.items():
        parts.append(section(f"triggers.{name}", keys, cls, None, secrets.get(name, {})))
    rows = "\n".join(f"| `{key}` | {doc} |" for key, doc in sorted(ROUTE_KEYS.items()))
    parts.append(
        "## [intents.NAME]\n\nA route: where the intent (or request type) `NAME` is served. "
        'Names with dots are quoted (`[intents."AMAZON.HelpIntent"]`); an unknown key '
        "fails at start.\n\n| key | what it is for |\n|---|---|\n" + rows + "\n"
    )
    sources = "\n".join(
        f"| `{source}` | {', '.join(f'`{k}`' for k in sorted(keys))} |"
        for source, keys in MATCH_KEYS.items()
    )
    route_keys = ", ".join(f"`{k}`" for k in sorted(RULE_ROUTE_KEYS))
    parts.append(
        "## [events.NAME]\n\nA rule: `source`, match keys (every one given must match; a list "
        "matches when any of its values does; `*` is the only glob character), and where its "
        f"function runs: {route_keys}.\n\n| source | match keys |\n|---|---|\n" + sources + "\n"
    )
    from skill.settings import mcp

    parts.append(section("mcp", mcp.MCP_KEYS, mcp.McpSettings, None))
    parts.append(section("mcp.oauth", mcp.MCP_OAUTH_KEYS, mcp.McpOAuthSettings, None))
    rows = "\n".join(f"| `{key}` | {doc} |" for key, doc in mcp.MCP_CLIENT_KEYS.items())
    parts.append(
        "## [[mcp.oauth.clients]]\n\nOne client that may obtain access tokens by OAuth client "
        "credentials (HTTP Basic or the form body) at `POST /oauth/token`; in TOML the same as "
        '`clients = [{client_id = "…", secret_file = "…"}]` under `[mcp.oauth]`.\n\n'
        "| key | what it is for |\n|---|---|\n" + rows + "\n"
    )
    from skill.settings.functions import FUNCTION_KEYS

    rows = "\n".join(f"| `{key}` | {doc} |" for key, doc in FUNCTION_KEYS.items())
    parts.append(
        "## [functions.NAME]\n\nA function `serve` runs on this machine as a child process "
        "on a free loopback port (`FUNKER_PORT`, `FUNKER_HOST`), restarted when it exits and "
        "when a file in its folder changes; a route or rule whose `host` is `NAME` goes to it. "
        "Needs a loopback `[server] host` (the default when `[functions]` or `[skill] "
        "development` is given). `NAME` is lower-case letters, digits and `-`.\n\n"
        "| key | what it is for |\n|---|---|\n" + rows + "\n"
    )
    return "\n".join(parts)


def section(
    name: str,
    keys: dict[str, Any],
    cls: type,
    env: str | None,
    secrets: dict[str, str] | None = None,
) -> str:
    """One table's keys: default, values, environment variable, what each is for."""
    from skill.settings.values import bound

    secrets = secrets or {}
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    rows = []
    for key, known in keys.items():
        variable = f"`{env}{key.upper()}`" if env else secrets.get(key, "")
        if variable and not variable.startswith("`"):
            variable = f"`{variable}`"
        rows.append(
            f"| `{key}` | {default(defaults[key])} | {bound(known.parse)} | {variable or '–'} "
            f"| {known.doc} |"
        )
    header = "| key | default | values | environment | what it is for |\n|---|---|---|---|---|\n"
    return f"## [{name}]\n\n" + header + "\n".join(rows) + "\n"


def default(field: dataclasses.Field[Any]) -> str:
    if field.default is dataclasses.MISSING:
        return "–"
    value = field.default
    if value is None:
        return "–"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[]`" if not value else f"`{list(value)}`"
    return f"`{value}`"


def command_line() -> str:
    from funker_dispatch.cli import build_parser

    parts = []
    for prog, parser in commands(build_parser()):
        parts.append(f"## {prog}\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(commands(sub))
    return found
