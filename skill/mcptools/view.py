"""The MCP endpoint's thin Flask views on the public listener: POST /mcp, OAuth, metadata.

Each view checks what is cheap first (Origin, the bearer token), then hands
the body to the SDK (`protocol`); a tool call comes back to this thread as
`call.answer_tool`. Every MCP request gets the Alexa path's request record, so
it has the same JSON log line and metrics, with `request_type="mcp"`; the
caller appears there only as a hash. Tokens, secrets and bodies are never
logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request

from skill.environ import ARRIVED, EventAdmission
from skill.handlers import Dispatcher, current_record, start_record
from skill.mcptools.auth import (
    AUTHORIZE_PATH,
    RESOURCE_METADATA,
    SERVER_METADATA,
    TOKEN_PATH,
    Caller,
    McpAuth,
    TokenError,
    Unauthorized,
    origin_of,
    request_resource,
)
from skill.mcptools.call import (
    REQUEST_TYPE,
    BadArguments,
    ToolAnswer,
    answer_tool,
    caller_id,
    check_arguments,
)
from skill.mcptools.catalog import OUTPUT_SCHEMA, Catalog, build_catalog
from skill.mcptools.protocol import EXCHANGE, McpProtocol
from skill.observability import log_request, short_hash
from skill.settings import Settings
from skill.settings.mcp import MAX_MCP_BODY_BYTES
from skill.settings.sections import is_loopback

log = logging.getLogger("funker_dispatch")

_STATE = "funker_dispatch_mcp"
#: How long one MCP request may take on its thread, function call included (the call itself
#: is bounded by [dispatch] deadline, under 8 s).
MAX_REQUEST_SECONDS = 20.0
#: The token endpoint's body cap: a form of a few fields.
MAX_TOKEN_BODY_BYTES = 8 * 1024


@dataclass(frozen=True)
class McpEndpoint:
    """Everything the views need, built once at start."""

    settings: Settings
    catalog: Catalog
    auth: McpAuth
    protocol: McpProtocol
    dispatcher: Dispatcher
    application_id: str


def register(app: Flask, settings: Settings) -> None:
    """Add POST /mcp (`[mcp] path`) and, with `[mcp.oauth]`, the token endpoint and metadata."""
    state = app.extensions["funker_dispatch"]
    mcp = settings.mcp
    # A tool call is not a voice request: nothing to say "One moment." to.
    dispatcher = replace(state["dispatcher"], progressive=None)
    catalog = build_catalog(
        state["models"],
        state["router"],
        locale=mcp.locale,
        globs=mcp.intents,
        descriptions={name: route.description for name, route in settings.routes.items()},
    )
    ids = settings.skill.application_ids
    application_id = ids[0] if ids else "amzn1.ask.skill.00000000-0000-0000-0000-000000000000"
    endpoint = McpEndpoint(
        settings,
        catalog,
        McpAuth(mcp),
        McpProtocol(lambda: _sdk_server(catalog)),
        dispatcher,
        application_id,
    )
    app.extensions[_STATE] = endpoint
    if mcp.refuses_everything:
        log.warning(
            "[mcp] enabled with no token_file and no [[mcp.oauth.clients]]: every MCP request "
            "is refused"
        )
    app.add_url_rule(
        mcp.path,
        endpoint="mcp",
        view_func=_mcp_view,
        methods=["POST", "GET", "DELETE"],
        provide_automatic_options=False,
    )
    if mcp.oauth is not None:
        well_known = RESOURCE_METADATA + mcp.path
        for path in {well_known, RESOURCE_METADATA}:
            app.add_url_rule(path, endpoint=f"mcp_prm{path}", view_func=_resource_metadata)
        app.add_url_rule(SERVER_METADATA, endpoint="mcp_asm", view_func=_server_metadata)
        app.add_url_rule(
            TOKEN_PATH,
            endpoint="mcp_token",
            view_func=_token_view,
            methods=["POST"],
            provide_automatic_options=False,
        )
        app.add_url_rule(AUTHORIZE_PATH, endpoint="mcp_authorize", view_func=_authorize_view)


def body_caps(settings: Settings) -> dict[str, int]:
    """The MCP paths' body caps (413 above), for the server's bridge."""
    caps = {settings.mcp.path: MAX_MCP_BODY_BYTES}
    if settings.mcp.oauth is not None:
        caps[TOKEN_PATH] = MAX_TOKEN_BODY_BYTES
    return caps


def admission(app: Flask) -> EventAdmission:
    """MCP requests run on the event lane's threads, never on Alexa's (docs/robustness.md)."""
    settings: Settings = app.config["SETTINGS"]
    return EventAdmission(
        paths=frozenset(body_caps(settings)),
        threads=settings.server.event_threads,
        body_budget=settings.server.event_body_budget,
        refused=_refused_busy,
    )


def _refused_busy(path: str) -> None:
    line = {"request_type": REQUEST_TYPE, "path": path, "outcome": "refused", "reason": "busy"}
    log_request({**line, "status": 503})


def _endpoint() -> McpEndpoint:
    return current_app.extensions[_STATE]


# --- the SDK's server ---------------------------------------------------------------------


def _sdk_server(catalog: Catalog) -> Any:
    """The SDK's lowlevel server: tools/list from the catalog, tools/call through the view."""
    import mcp_types as types
    from mcp.server.lowlevel.server import Server
    from mcp.shared.exceptions import MCPError

    tools = [
        types.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema,
            output_schema=OUTPUT_SCHEMA,
        )
        for tool in catalog.tools.values()
    ]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> Any:
        tool = catalog.tools.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        exchange = ctx.request.scope[EXCHANGE]
        # On the view's thread: the request's own record, and the blocking call off the loop.
        answer = await exchange.run_here(lambda: _answer(tool, params.arguments, exchange.caller))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=answer.text)],
            structured_content=answer.structured or None,
            is_error=answer.is_error,
        )

    return Server(
        "funker-dispatch",
        version=_version(),
        instructions="Each tool is an intent of an Alexa skill; its result is what Alexa says.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("funker-dispatch")
    except PackageNotFoundError:
        return "0"


def _answer(tool: Any, arguments: Mapping[str, Any] | None, caller: Caller) -> ToolAnswer:
    """Runs on the view's thread (handed back by the loop): the arguments checked, then the
    function call itself. Arguments that do not fit are a tool error (the model can retry)."""
    endpoint = _endpoint()
    record = current_record()
    record.intent = tool.name
    try:
        values = check_arguments(tool, arguments)
    except BadArguments as exc:
        record.outcome, record.reason = "rejected", "bad-arguments"
        return ToolAnswer(str(exc), {}, True)
    return answer_tool(
        endpoint.dispatcher,
        endpoint.catalog,
        tool,
        values,
        application_id=endpoint.application_id,
        identity=caller.identity,
    )


# --- views ---------------------------------------------------------------------------------


def _mcp_view() -> Response:
    endpoint = _endpoint()
    g.started = time.perf_counter()
    record = g.record = start_record()  # the request log line and metrics (skill/app.py)
    record.request_type = REQUEST_TYPE
    record.arrived = request.environ.get(ARRIVED)  # the call's deadline counts from arrival
    if request.method != "POST":
        # Stateless: no stream to open with GET, no session to end with DELETE (405, as the
        # Streamable HTTP transport allows).
        response = _refuse(record, "method-not-allowed", "POST only", 405)
        response.headers["Allow"] = "POST"
        return response
    if not _origin_allowed(endpoint.settings):
        return _refuse(record, "mcp-origin", "Origin not allowed", 403)
    try:
        resource = request_resource(endpoint.settings.mcp, request.scheme, request.host)
    except ValueError as exc:
        return _refuse(record, "malformed", str(exc), 400)
    try:
        caller = endpoint.auth.authenticate(request.headers.get("Authorization"), resource)
    except Unauthorized as failure:
        response = _refuse(record, failure.reason, failure.description, 401)
        response.headers["WWW-Authenticate"] = endpoint.auth.challenge(resource, failure)
        return response
    record.user_id = caller_id(caller.identity)  # as the envelope names it; hashed in the log
    if request.mimetype != "application/json":  # what Streamable HTTP posts, and nothing else
        return _refuse(record, "malformed", "Content-Type must be application/json", 415)
    body = request.get_data(cache=False)
    if len(body) > MAX_MCP_BODY_BYTES:  # the bridge refuses it unread; this is for direct WSGI use
        return _refuse(record, "too-large", f"body larger than {MAX_MCP_BODY_BYTES} bytes", 413)
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in request.headers.items()
        if name.lower() != "authorization"  # the SDK needs none of it; it stays here
    ]
    status, answer_headers, out = endpoint.protocol.handle(
        "POST", headers, body, caller=caller, within=MAX_REQUEST_SECONDS
    )
    if status >= 400 and record.outcome == "ok":
        record.outcome, record.reason = "rejected", "malformed"
    response = Response(out, status=status)
    for name, value in answer_headers:
        if name.lower() != "content-length":
            response.headers[name] = value
    return response


def _refuse(record: Any, reason: str, message: str, status: int) -> Response:
    record.outcome, record.reason = "rejected", reason
    response = jsonify(error=reason, message=message)
    response.status_code = status
    return response


def _origin_allowed(settings: Settings) -> bool:
    """The Streamable HTTP spec's DNS-rebinding rule: an Origin header, when sent, must be one
    the operator allows. Never "the request's own Host": a rebound page's Origin matches that."""
    sent = request.headers.get("Origin")
    if sent is None:
        return True  # not a browser: Alexa+, the SDK's clients, curl
    allowed = set(settings.mcp.allowed_origins)
    if settings.mcp.resource is not None:
        allowed.add(origin_of(settings.mcp.resource))
    if is_loopback(settings.server.host):
        port = request.environ.get("SERVER_PORT", str(settings.server.port))
        allowed |= {f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]")}
    return sent.rstrip("/").lower() in {origin.lower() for origin in allowed}


def _resource_metadata() -> Response:
    return _metadata(lambda auth, resource: auth.resource_metadata(resource))


def _server_metadata() -> Response:
    return _metadata(lambda auth, resource: auth.server_metadata(resource))


def _metadata(document: Callable[[Any, str], Any]) -> Response:
    """One of the two metadata documents (RFC 9728, RFC 8414), for the resource asked about."""
    endpoint = _endpoint()
    try:
        resource = request_resource(endpoint.settings.mcp, request.scheme, request.host)
    except ValueError as exc:
        return _error("malformed", str(exc), 400)
    return jsonify(document(endpoint.auth, resource))


def _authorize_view() -> Response:
    # Client credentials only: no user ever authorizes anything here, and nothing redirects.
    response = jsonify(
        error="unsupported_response_type",
        error_description="this server issues tokens by client credentials only",
    )
    response.status_code = 400
    return response


def _token_view() -> Response:
    endpoint = _endpoint()
    began = time.perf_counter()
    outcome: dict[str, Any] = {"request_type": "mcp-token"}
    try:
        resource = request_resource(endpoint.settings.mcp, request.scheme, request.host)
        if request.mimetype != "application/x-www-form-urlencoded":
            raise TokenError("invalid_request", "send application/x-www-form-urlencoded")
        body = request.get_data(cache=True)
        if len(body) > MAX_TOKEN_BODY_BYTES:
            raise TokenError("invalid_request", "body too large", 413)
        form = {key: values[0] for key, values in request.form.lists() if len(values) == 1}
        if len(form) != len(request.form):
            raise TokenError("invalid_request", "a parameter is repeated")  # RFC 6749 §3.2
        client, issued = endpoint.auth.issue(form, request.headers.get("Authorization"), resource)
        outcome |= {"outcome": "ok", "status": 200, "client": short_hash(client)}
        response = jsonify(issued)
    except ValueError as exc:
        outcome |= {"outcome": "rejected", "reason": "malformed", "status": 400}
        response = jsonify(error="invalid_request", error_description=str(exc))
        response.status_code = 400
    except TokenError as exc:
        outcome |= {"outcome": "rejected", "reason": exc.error, "status": exc.status}
        response = jsonify(error=exc.error, error_description=exc.description)
        response.status_code = exc.status
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="mcp"'
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    response.headers["Pragma"] = "no-cache"
    outcome["total_ms"] = round((time.perf_counter() - began) * 1000, 2)
    log_request(outcome)
    return response


def _error(error: str, message: str, status: int) -> Response:
    response = jsonify(error=error, message=message)
    response.status_code = status
    return response
