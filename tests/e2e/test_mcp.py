"""POST /mcp on a real server: the official `mcp` client over real HTTP, real function processes.

The server is `funker-dispatch serve` with `[mcp]` on, a static token and an
OAuth client; HelloIntent is the example function (a `[functions]` child the
server starts), SpaceCountIntent a function process that hangs up without
answering. Nothing is mocked: tokens come from the server's own token
endpoint, or are signed with the key the test wrote for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client

from dispatch.responses import apology_text
from funker_dispatch.devtools.mcpclient import Credentials, McpFailure, list_tools
from tests.e2e.conftest import Server, intent, trusted_config
from tests.helpers import console_script, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "functions"
TOKEN = "static-test-token-6f1d8a"
CLIENT_ID = "alexa-plus"
CLIENT_SECRET = "client-secret-3b9e0c77"


def _secret(path: Path, value: str | bytes) -> str:
    path.write_bytes(value.encode() if isinstance(value, str) else value)
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("mcp-secrets")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "key": key,
        "key_file": _secret(tmp / "signing.pem", pem),
        "token_file": _secret(tmp / "token", TOKEN + "\n"),
        "secret_file": _secret(tmp / "client-secret", CLIENT_SECRET),
    }


@pytest.fixture(scope="module")
def server(start_server, dev_ca, function_process, keys, tmp_path_factory) -> Server:
    hanging_up = function_process("close")
    stalling = function_process("stall")
    tmp = tmp_path_factory.mktemp("mcp-config")
    config = trusted_config(dev_ca, tmp) + (
        '[dispatch]\nnaming = "none"\n\n'
        "[server]\nevent_threads = 2\n\n"
        f'[functions.hello]\ndir = "{EXAMPLES / "hello"}"\n\n'
        '[intents.HelloIntent]\nhost = "hello"\n'
        'description = "Greets a friend by name."\n\n'
        f'[intents.SpaceCountIntent]\nhost = "127.0.0.1"\nport = {hanging_up}\n\n'
        f'[intents.HostnameIntent]\nhost = "127.0.0.1"\nport = {stalling}\ntimeout = 6.0\n\n'
        '[mcp]\nenabled = true\nlocale = "en-US"\n'
        f'token_file = "{keys["token_file"]}"\n\n'
        f'[mcp.oauth]\nkey_file = "{keys["key_file"]}"\n'
        f'clients = [{{client_id = "{CLIENT_ID}", secret_file = "{keys["secret_file"]}"}}]\n'
    )
    # [functions] children are started by the server: tests that call HelloIntent wait for it
    # to answer (_poll_until_hello_answers).
    return start_server(base=config)


def _run(coroutine: Any) -> Any:
    # A thread of its own: another suite's fixture may keep a loop running on this one.
    with ThreadPoolExecutor(1) as own:
        return own.submit(asyncio.run, asyncio.wait_for(coroutine, 30)).result()


async def _with_client(url: str, run: Callable[[Client], Any], **http: Any) -> Any:
    async with (
        httpx2.AsyncClient(timeout=20, **http) as client,
        Client(streamable_http_client(url, http_client=client), mode="legacy") as session,
    ):
        return await run(session)


def _bearer(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def _raw(
    server: Server, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(
        server.url + "/mcp",
        data=body if method == "POST" else None,
        method=method,
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()


def _poll_until_hello_answers(server: Server) -> None:
    def answered() -> bool:
        result = _run(
            _with_client(
                server.url + "/mcp",
                lambda c: c.call_tool("HelloIntent", {"name": "Ada"}),
                **_bearer(TOKEN),
            )
        )
        return not result.is_error

    wait_until(answered, 30, "the hello function to answer through MCP", every=0.2)


def test_official_client_negotiates_2025_11_25_and_lists_one_tool_per_routed_intent(server):
    async def run(client: Client) -> Any:
        return client.protocol_version, await client.list_tools()

    version, listed = _run(_with_client(server.url + "/mcp", run, **_bearer(TOKEN)))
    assert version == "2025-11-25"
    tools = {tool.name: tool for tool in listed.tools}
    # naming = "none": only the routed intents; the built-ins are never tools.
    assert set(tools) == {"HelloIntent", "SpaceCountIntent", "HostnameIntent"}
    hello = tools["HelloIntent"]
    assert hello.description == "Greets a friend by name."  # the route's description key
    assert hello.input_schema["properties"]["name"]["type"] == "string"
    assert "Grace" in hello.input_schema["properties"]["name"]["examples"]
    assert tools["SpaceCountIntent"].description.startswith("Answers what a user asks")
    assert "how many people are in space" in tools["SpaceCountIntent"].description


def test_tool_call_with_a_slot_is_answered_by_the_function_as_an_intent_request(server):
    _poll_until_hello_answers(server)
    result = _run(
        _with_client(
            server.url + "/mcp",
            # A synonym: only entity resolution, as the envelope carries it, turns it into Grace.
            lambda c: c.call_tool("HelloIntent", {"name": "Amazing Grace"}),
            **_bearer(TOKEN),
        )
    )
    assert result.is_error is False
    assert [block.text for block in result.content] == ["Hello, Grace!"]
    assert result.structured_content["speech"] == "Hello, Grace!"
    assert result.structured_content["end_session"] is True
    assert result.structured_content["card"]["title"] == "Hello"
    line = _log_line(server, lambda fields: fields.get("intent") == "HelloIntent")
    assert line["request_type"] == "mcp" and line["outcome"] == "ok"
    assert line["locale"] == "en-US" and line["route"] == "HelloIntent"
    assert line["user"] and len(line["user"]) == 12  # a hash of the caller, never its name


def test_failing_function_is_a_tool_error_carrying_the_spoken_apology(server):
    result = _run(
        _with_client(
            server.url + "/mcp",
            lambda c: c.call_tool("SpaceCountIntent", {}),
            **_bearer(TOKEN),
        )
    )
    assert result.is_error is True
    assert [block.text for block in result.content] == [apology_text("en-US")]
    line = _log_line(server, lambda fields: fields.get("intent") == "SpaceCountIntent")
    assert line["outcome"] == "apology" and line["reason"] == "protocol"


def test_arguments_that_fit_no_slot_are_a_tool_error_naming_the_slots(server):
    result = _run(
        _with_client(
            server.url + "/mcp",
            lambda c: c.call_tool("HelloIntent", {"nmae": "Ada"}),
            **_bearer(TOKEN),
        )
    )
    assert result.is_error is True
    assert "no slot 'nmae'" in result.content[0].text and "name" in result.content[0].text


def test_no_token_is_401_naming_the_protected_resource_metadata(server):
    status, headers, _ = _raw(server, LIST)
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    metadata = f"{server.url}/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata}"' in challenge
    assert "invalid_token" not in challenge  # nothing was presented


def test_wrong_token_is_401_invalid_token_and_the_official_client_fails(server):
    status, headers, _ = _raw(server, LIST, {"Authorization": "Bearer not-the-token"})
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    with pytest.raises(McpFailure) as refused:
        list_tools(server.url + "/mcp", Credentials(token="wrong"))
    assert "401 Unauthorized: the token was refused" in str(refused.value)


def _access_token(keys: dict[str, Any], audience: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": audience.rsplit("/mcp", 1)[0],
        "sub": CLIENT_ID,
        "client_id": CLIENT_ID,
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(payload, keys["key"], algorithm="ES256", headers={"typ": "at+jwt"})


def test_token_signed_by_the_key_but_for_another_audience_is_refused(server, keys):
    good = _access_token(keys, server.url + "/mcp")
    assert _raw(server, LIST, {"Authorization": f"Bearer {good}"})[0] == 200
    other = _access_token(keys, "https://elsewhere.example/mcp", iss=server.url)
    status, headers, _ = _raw(server, LIST, {"Authorization": f"Bearer {other}"})
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert _log_line(server, lambda fields: fields.get("reason") == "mcp-audience")
    expired = _access_token(keys, server.url + "/mcp", iat=1, exp=2)
    assert _raw(server, LIST, {"Authorization": f"Bearer {expired}"})[0] == 401


def test_a_token_signed_by_another_key_is_refused(server):
    stranger = {"key": ec.generate_private_key(ec.SECP256R1())}
    token = _access_token(stranger, server.url + "/mcp")
    assert _raw(server, LIST, {"Authorization": f"Bearer {token}"})[0] == 401


def test_a_foreign_origin_is_403_and_the_server_s_own_is_served(server):
    foreign = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://rebound.example:8080"}
    status, _, body = _raw(server, LIST, foreign)
    assert status == 403 and json.loads(body)["error"] == "mcp-origin"
    own = {"Authorization": f"Bearer {TOKEN}", "Origin": server.url}
    assert _raw(server, LIST, own)[0] == 200


def test_malformed_requests_get_4xx_never_500(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _raw(server, b"{not json", auth)[0] == 400
    assert _raw(server, b"[]", auth)[0] == 400
    assert _raw(server, b'{"jsonrpc": "2.0"}', auth)[0] == 400
    assert _raw(server, LIST, {**auth, "Content-Type": "text/plain"})[0] == 415
    assert _raw(server, LIST, {**auth, "Accept": "text/html"})[0] == 406
    status, headers, _ = _raw(server, b"", auth, method="GET")
    assert status == 405 and headers["Allow"] == "POST"
    assert _raw(server, b"{" + b" " * 70_000 + b"}", auth)[0] == 413  # over the 64 KiB cap
    assert "Traceback" not in server.log()


def test_metadata_documents_describe_this_endpoint_and_its_token_endpoint(server):
    with urllib.request.urlopen(
        server.url + "/.well-known/oauth-protected-resource/mcp", timeout=10
    ) as response:
        resource = json.load(response)
    assert resource["resource"] == server.url + "/mcp"
    assert resource["authorization_servers"] == [server.url]
    with urllib.request.urlopen(
        server.url + "/.well-known/oauth-authorization-server", timeout=10
    ) as response:
        metadata = json.load(response)
    assert metadata["issuer"] == server.url
    assert metadata["token_endpoint"] == server.url + "/oauth/token"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }


def _token_request(server: Server, form: dict[str, str], basic: tuple[str, str] | None = None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic is not None:
        pair = f"{urllib.parse.quote_plus(basic[0])}:{urllib.parse.quote_plus(basic[1])}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(
        server.url + "/oauth/token", data=urllib.parse.urlencode(form).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def test_token_endpoint_issues_by_basic_or_form_and_refuses_what_it_must(server):
    grant = {"grant_type": "client_credentials"}
    status, headers, issued = _token_request(server, grant, (CLIENT_ID, CLIENT_SECRET))
    assert status == 200 and issued["token_type"] == "Bearer" and issued["expires_in"] == 900
    assert headers["Cache-Control"] == "no-store"
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert claims["aud"] == server.url + "/mcp" and claims["sub"] == CLIENT_ID
    form = {**grant, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert _token_request(server, {**form, "resource": server.url + "/mcp"})[0] == 200
    status, headers, refused = _token_request(server, {**form, "client_secret": "guess"})
    assert (status, refused["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic")
    status, _, refused = _token_request(server, {**form, "resource": "https://other.example/mcp"})
    assert (status, refused["error"]) == (400, "invalid_target")
    status, _, refused = _token_request(server, {**form, "grant_type": "password"})
    assert (status, refused["error"]) == (400, "unsupported_grant_type")


def test_oauth_client_credentials_end_to_end_with_the_official_client(server):
    class Memory:
        tokens = None
        info = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens

        async def get_client_info(self):
            return self.info

        async def set_client_info(self, info):
            self.info = info

    storage = Memory()
    provider = ClientCredentialsOAuthProvider(
        server_url=server.url + "/mcp",
        storage=storage,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer=server.url,
    )

    async def run(client: Client) -> Any:
        return await client.call_tool("HelloIntent", {"name": "Ada"})

    _poll_until_hello_answers(server)
    result = _run(_with_client(server.url + "/mcp", run, auth=provider))
    assert [block.text for block in result.content] == ["Hello, Ada!"]
    # The client found the token endpoint from the 401, obtained a token for this endpoint,
    # and the server issued it: no static token was involved.
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == server.url + "/mcp"
    assert _log_line(server, lambda f: f.get("request_type") == "mcp-token" and f["status"] == 200)


def test_cli_lists_and_calls_tools_with_the_configuration_s_token(server):
    environment = {**os.environ, "FUNKER_DISPATCH_HOME": str(server.config.parent / "home")}
    environment.pop("FUNKER_DISPATCH_CONFIG", None)
    common = ["--config", str(server.config), "--url", server.url + "/mcp"]
    listed = subprocess.run(
        [*console_script(), "mcp", "tools", *common],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "HelloIntent(name?=" in listed.stdout and "Greets a friend by name." in listed.stdout
    called = subprocess.run(
        [*console_script(), "mcp", "call", "HelloIntent", "name=Ada Lovelace", *common],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert called.returncode == 0, called.stderr
    assert called.stdout.splitlines()[0] == "Hello, Ada!"
    failed = subprocess.run(
        [*console_script(), "mcp", "call", "SpaceCountIntent", *common],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert failed.returncode == 1 and failed.stdout.startswith("error: ")
    refused = subprocess.run(
        [*console_script(), "mcp", "tools", *common, "--token", "wrong"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "401 Unauthorized: the token was refused" in refused.stderr


def test_secrets_never_reach_the_log(server):
    log = server.log()
    assert TOKEN not in log and CLIENT_SECRET not in log
    assert "mcp" in log  # the request lines are there, without them


def test_alexa_requests_are_answered_while_mcp_holds_every_event_thread(server, signed):
    """MCP runs on the event lane ([server] event_threads = 2 here): two tool calls stuck on a
    function that never answers take it whole, another is refused at once (503, retry), and
    a signed Alexa request is still answered by its own threads."""
    _poll_until_hello_answers(server)
    stuck = json.dumps(
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "HostnameIntent"}}
    ).encode()
    auth = {"Authorization": f"Bearer {TOKEN}", "MCP-Protocol-Version": "2025-11-25"}
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(_raw, server, stuck, auth) for _ in range(2)]

        def lane_full() -> bool:
            for index, call in enumerate(calls):
                if call.done():  # refused before it had a thread (a poll held one): again
                    calls[index] = pool.submit(_raw, server, stuck, auth)
            return _raw(server, LIST, auth)[0] == 503

        wait_until(lane_full, 5, "the event lane to be full", every=0.05)
        answer = signed(
            server.url, intent("HelloIntent", {"name": {"name": "name", "value": "Ada"}})
        )
        lane_still_full = not all(call.done() for call in calls)
        results = [call.result(timeout=30) for call in calls]
    assert answer.status == 200 and "Hello, Ada" in answer.speech
    assert lane_still_full  # the Alexa answer came while both tool calls were stuck
    for status, _, body in results:  # each stuck call ends as a tool error at its deadline
        assert status == 200 and json.loads(body)["result"]["isError"] is True


def _log_line(server: Server, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for line in reversed(server.log().splitlines()):
            if line.startswith("{"):
                try:
                    fields = json.loads(line)
                except ValueError:
                    continue
                if matches(fields):
                    return fields
        return None

    return wait_until(found, 10, "the request's log line")
