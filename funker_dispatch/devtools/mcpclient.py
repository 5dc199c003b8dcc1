"""`funker-dispatch mcp tools` and `mcp call TOOL key=value`: the official `mcp` client, as
Alexa+ would connect (docs/mcp.md). The console's MCP tab uses the same functions.

The client speaks Streamable HTTP at protocol 2025-11-25 (the initialize
handshake) to the configuration's own endpoint, with its static token, or, with
only `[[mcp.oauth.clients]]`, by OAuth client credentials through the SDK's
own provider: discovery from the 401, the metadata, the token endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from skill.settings import Settings, public_origin
from skill.text import printable

#: The protocol revision the handshake asks for (what Alexa+ speaks).
PROTOCOL_VERSION = "2025-11-25"


class McpFailure(Exception):
    """No usable answer from the endpoint: one line for the user, never a traceback."""


@dataclass(frozen=True)
class Credentials:
    """How the client authenticates: a static token, or client credentials."""

    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


def add_parser(commands: Any) -> None:
    mcp = commands.add_parser("mcp", help="the MCP client: list the tools, call one")
    mcp_commands = mcp.add_subparsers(dest="mcp_command", metavar="COMMAND")
    tools = mcp_commands.add_parser("tools", help="list the tools the endpoint serves")
    call = mcp_commands.add_parser("call", help="call a tool: mcp call HelloIntent name=Ada")
    call.add_argument("tool", help="the tool's name (an intent of the model)")
    call.add_argument("arguments", nargs="*", metavar="NAME=VALUE", help="slot values")
    for parser in (tools, call):
        parser.add_argument(
            "--config",
            metavar="FILE",
            help="TOML configuration (default: $FUNKER_DISPATCH_CONFIG, else the embedded default)",
        )
        parser.add_argument("--url", help="the MCP endpoint (default: the configuration's own)")
        parser.add_argument(
            "--token",
            help="bearer token (default: the configuration's token_file, or the "
            "embedded default's development token)",
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")


def endpoint_url(settings: Settings) -> str:
    return public_origin(settings.server) + settings.mcp.path


def credentials(settings: Settings, token: str | None = None) -> Credentials:
    """The flag's token, else the configuration's, else its first OAuth client."""
    if token:
        return Credentials(token=token)
    if settings.mcp.token:
        return Credentials(token=settings.mcp.token)
    oauth = settings.mcp.oauth
    if oauth is not None and oauth.clients:
        client = oauth.clients[0]
        return Credentials(client_id=client.client_id, client_secret=client.secret)
    raise McpFailure(
        "no credential: pass --token, or configure [mcp] token_file or [[mcp.oauth.clients]]"
    )


def list_tools(url: str, auth: Credentials, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The endpoint's tools, as MCP's JSON (name, description, inputSchema, ...)."""

    async def run(client: Any) -> Any:
        result = await client.list_tools()
        return [tool.model_dump(by_alias=True, exclude_none=True) for tool in result.tools]

    return _session(url, auth, timeout, run)


def call_tool(
    url: str, auth: Credentials, name: str, arguments: Mapping[str, str], *, timeout: float = 10.0
) -> dict[str, Any]:
    """One tool call's result, as MCP's JSON (content, structuredContent, isError)."""

    async def run(client: Any) -> Any:
        result = await client.call_tool(name, dict(arguments))
        return result.model_dump(by_alias=True, exclude_none=True)

    return _session(url, auth, timeout, run)


def _session(url: str, auth: Credentials, timeout: float, run: Any) -> Any:
    # The HTTP statuses seen: the SDK reports a refusal as "Server returned an error
    # response", and the last status says which.
    statuses: list[int] = []

    def session() -> Any:
        return asyncio.run(asyncio.wait_for(_connected(url, auth, run, statuses), timeout))

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return session()
        # Called where a loop already runs (a caller's own): the client gets a thread of its own.
        with ThreadPoolExecutor(1) as own:
            return own.submit(session).result()
    except TimeoutError:
        raise McpFailure(f"no answer from {url} within {timeout:g} s") from None
    except McpFailure:
        raise
    except BaseException as exc:  # the SDK raises groups, HTTP and protocol errors alike
        refused = statuses[-1:] == [401]
        raise McpFailure(f"{url}: {REFUSED if refused else _reason(exc)}") from None


REFUSED = "401 Unauthorized: the token was refused"


async def _connected(url: str, auth: Credentials, run: Any, statuses: list[int]) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {auth.token}"} if auth.token else {}
    provider = None
    if auth.client_id is not None:
        from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
        from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

        class Memory:  # this command's tokens live as long as it does
            tokens: OAuthToken | None = None
            info: OAuthClientInformationFull | None = None

            async def get_tokens(self) -> OAuthToken | None:
                return self.tokens

            async def set_tokens(self, tokens: OAuthToken) -> None:
                self.tokens = tokens

            async def get_client_info(self) -> OAuthClientInformationFull | None:
                return self.info

            async def set_client_info(self, info: OAuthClientInformationFull) -> None:
                self.info = info

        from urllib.parse import urlsplit

        parts = urlsplit(url)
        provider = ClientCredentialsOAuthProvider(
            server_url=url,
            storage=Memory(),
            client_id=auth.client_id,
            client_secret=auth.client_secret or "",
            issuer=f"{parts.scheme}://{parts.netloc}",
        )

    async def note(response: Any) -> None:
        statuses.append(response.status_code)

    hooks = {"response": [note]}
    async with (
        httpx2.AsyncClient(headers=headers, auth=provider, timeout=30, event_hooks=hooks) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        return await run(client)


def _reason(exc: BaseException) -> str:
    """The innermost message of what failed (the SDK wraps errors in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return REFUSED
    text = str(exc) or type(exc).__name__
    return " ".join(printable(text).split())[:300]


def parse_arguments(pairs: list[str]) -> dict[str, str]:
    """`name=value` words as a mapping; ValueError names the bad one."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{pair!r}: expected NAME=VALUE")
        found[name.strip()] = value
    return found


def mcp_command(settings: Settings, args: argparse.Namespace, parser: Any) -> int:
    if args.mcp_command is None:
        parser.parse_args(["mcp", "--help"])
    url = args.url or endpoint_url(settings)
    try:
        auth = credentials(settings, args.token)
        if args.mcp_command == "tools":
            tools = list_tools(url, auth, timeout=args.timeout)
            print(json.dumps(tools, indent=2) if args.json else "\n".join(_tool_lines(tools)))
            return 0
        try:
            arguments = parse_arguments(args.arguments)
        except ValueError as exc:
            parser.error(f"mcp call: {exc}")
        result = call_tool(url, auth, args.tool, arguments, timeout=args.timeout)
    except McpFailure as exc:
        print(f"funker-dispatch mcp: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print("\n".join(_result_lines(result)))
    return 1 if result.get("isError") else 0


def _tool_lines(tools: list[dict[str, Any]]) -> list[str]:
    lines = []
    for tool in tools:
        schema = tool.get("inputSchema") or {}
        required = set(schema.get("required") or ())
        slots = []
        for name, prop in (schema.get("properties") or {}).items():
            values = prop.get("enum") or prop.get("examples")
            shown = f"{name}{'' if name in required else '?'}"
            if values:
                more = "|…" if len(values) > 6 else ""
                shown += "=" + "|".join(str(v) for v in values[:6]) + more
            slots.append(shown)
        lines.append(printable(f"{tool['name']}({', '.join(slots)})"))
        lines.append(printable(f"    {tool.get('description', '')}"))
    return lines or ["(no tools)"]


def _result_lines(result: Mapping[str, Any]) -> list[str]:
    texts = [c.get("text", "") for c in result.get("content") or [] if c.get("type") == "text"]
    lines = [printable(("error: " if result.get("isError") else "") + " ".join(texts))]
    card = (result.get("structuredContent") or {}).get("card")
    if isinstance(card, Mapping):
        title = card.get("title", "")
        body = card.get("content") or card.get("text") or ""
        lines.append(printable(f"card: {title} — {body}".strip()))
    return lines
