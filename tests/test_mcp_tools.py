"""The tool list and the tool call's envelope, from the model and the routes (docs/mcp.md).

Plain functions, no server: one tool per routed custom intent, schemas from slots
and the dialog model, and the IntentRequest a call becomes, slot for slot the one
the simulator builds for the same values.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dispatch.registry import Router, parse_route
from funker_dispatch.devtools.simulator import alexa_slots, choose_model
from skill.mcptools.auth import McpAuth, Unauthorized, resource_metadata_url
from skill.mcptools.call import BadArguments, caller_id, check_arguments, intent_envelope
from skill.mcptools.catalog import build_catalog
from skill.models import load_models
from skill.settings.mcp import McpOAuthSettings, McpSettings, OAuthClient

SKILL = "amzn1.ask.skill.test"
MODELS = load_models()
CUSTOM = {
    "SpaceCountIntent",
    "HelloIntent",
    "HostnameIntent",
    "CaptainsIntent",
    "AlarmStatusIntent",
    "UploadsIntent",
    "LastDeployIntent",
}


def router(naming: str = "intent", **routes: str) -> Router:
    parsed = {
        name: parse_route(name, {"host": host}, default_port=9999) for name, host in routes.items()
    }
    return Router(parsed, naming=naming, function_port=9999)


def test_every_routed_custom_intent_is_a_tool_and_no_built_in_is():
    catalog = build_catalog(MODELS, router(), locale="en-US")
    assert set(catalog.tools) == CUSTOM
    assert catalog.locale == "en-US"


def test_without_the_naming_convention_only_configured_routes_are_tools():
    catalog = build_catalog(MODELS, router("none", HelloIntent="hello"), locale="en-US")
    assert set(catalog.tools) == {"HelloIntent"}


def test_intent_globs_choose_the_tools():
    catalog = build_catalog(MODELS, router(), locale=None, globs=["Hello*", "Space*"])
    assert set(catalog.tools) == {"HelloIntent", "SpaceCountIntent"}
    assert catalog.locale == sorted(MODELS)[0]  # no [mcp] locale: the model's first


def test_a_slot_is_a_string_whose_open_custom_type_lists_its_values_as_examples():
    hello = build_catalog(MODELS, router(), locale="en-US").tools["HelloIntent"]
    name = hello.input_schema["properties"]["name"]
    assert name["type"] == "string" and "enum" not in name
    assert {"Ada", "Grace", "Linus"} <= set(name["examples"])
    assert hello.input_schema["additionalProperties"] is False
    assert "required" not in hello.input_schema  # elicitationRequired is false in the model
    assert '"say hello to {name}"' in hello.description


def test_a_closed_slot_is_an_enum_and_an_elicited_one_is_required():
    model = MODELS["en-US"]
    dialog = {
        "intents": [
            {
                "name": "HelloIntent",
                "slots": [
                    {
                        "name": "name",
                        "type": "FriendName",
                        "elicitationRequired": True,
                        "validations": [{"type": "hasEntityResolutionMatch", "prompt": "p"}],
                    }
                ],
            }
        ]
    }
    models = {"en-US": replace(model, dialog=dialog)}
    hello = build_catalog(models, router(), locale="en-US").tools["HelloIntent"]
    assert hello.input_schema["required"] == ["name"]
    assert "Amazing Grace" in hello.input_schema["properties"]["name"]["enum"]
    with pytest.raises(BadArguments, match="one of"):
        check_arguments(hello, {"name": "Zed"})
    with pytest.raises(BadArguments, match="needs name"):
        check_arguments(hello, {})


def test_a_route_description_wins_over_the_samples():
    catalog = build_catalog(
        MODELS, router(), locale="en-US", descriptions={"HelloIntent": "Greets a friend."}
    )
    assert catalog.tools["HelloIntent"].description == "Greets a friend."


@pytest.mark.parametrize("spoken", ["Amazing Grace", "grace hopper", "Zed"])
def test_the_envelope_s_slots_are_the_simulator_s_for_the_same_values(spoken):
    catalog = build_catalog(MODELS, router(), locale="en-US")
    hello = catalog.tools["HelloIntent"]
    envelope = intent_envelope(
        catalog, hello, {"name": spoken}, application_id=SKILL, user_id=caller_id("token")
    )
    simulated = alexa_slots(choose_model(MODELS, "en-US"), "HelloIntent", {"name": spoken}, SKILL)
    assert envelope["request"]["intent"]["slots"] == simulated
    assert envelope["request"]["type"] == "IntentRequest"
    assert envelope["request"]["locale"] == "en-US"
    assert envelope["context"]["System"]["application"]["applicationId"] == SKILL


def test_the_caller_is_only_a_hash_and_nothing_names_alexa_s_api():
    catalog = build_catalog(MODELS, router(), locale="en-US")
    envelope = intent_envelope(
        catalog,
        catalog.tools["SpaceCountIntent"],
        {},
        application_id=SKILL,
        user_id=caller_id("client:alexa-plus"),
    )
    text = json.dumps(envelope)
    assert "alexa-plus" not in text
    assert envelope["session"]["user"]["userId"].startswith("amzn1.ask.account.MCP")
    assert "apiAccessToken" not in text and "apiEndpoint" not in text
    assert caller_id("client:a") != caller_id("client:b")


def test_arguments_that_are_not_slots_or_not_strings_are_refused():
    hello = build_catalog(MODELS, router(), locale="en-US").tools["HelloIntent"]
    assert check_arguments(hello, {"name": " Ada "}) == {"name": "Ada"}
    with pytest.raises(BadArguments, match="no slot 'who'"):
        check_arguments(hello, {"who": "Ada"})
    with pytest.raises(BadArguments, match="must be a string"):
        check_arguments(hello, {"name": 3})
    with pytest.raises(BadArguments, match="longer than"):
        check_arguments(hello, {"name": "a" * 5000})


# --- auth -------------------------------------------------------------------------------

RESOURCE = "https://skill.example.com/mcp"


def _auth() -> tuple[McpAuth, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    settings = McpSettings(
        enabled=True,
        token="static",
        oauth=McpOAuthSettings(key=pem, clients=(OAuthClient("c", "f", "s3cret"),)),
    )
    return McpAuth(settings), key


def test_an_issued_token_is_accepted_for_its_resource_only():
    auth, _ = _auth()
    _, issued = auth.issue(
        {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s3cret"},
        None,
        RESOURCE,
    )
    caller = auth.authenticate(f"Bearer {issued['access_token']}", RESOURCE)
    assert caller.identity == "client:c" and caller.method == "oauth"
    with pytest.raises(Unauthorized) as refused:
        auth.authenticate(f"Bearer {issued['access_token']}", "https://other.example.com/mcp")
    assert refused.value.reason in ("mcp-audience", "mcp-token")


def test_a_token_without_the_access_token_type_or_with_alg_none_is_refused():
    auth, key = _auth()
    claims = {
        "iss": "https://skill.example.com",
        "sub": "c",
        "client_id": "c",
        "aud": RESOURCE,
        "iat": 2_000_000_000,
        "exp": 2_000_000_900,
    }
    id_token = jwt.encode(claims, key, algorithm="ES256")  # typ JWT, not at+jwt
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})
    for token in (id_token, unsigned):
        with pytest.raises(Unauthorized):
            auth.authenticate(f"Bearer {token}", RESOURCE)


def test_the_static_token_and_nothing_else_passes_without_oauth():
    auth = McpAuth(McpSettings(enabled=True, token="static"))
    assert auth.authenticate("Bearer static", RESOURCE).method == "token"
    for header in (None, "", "Bearer", "Basic c3RhdGlj", "Bearer statiC"):
        with pytest.raises(Unauthorized):
            auth.authenticate(header, RESOURCE)
    assert "resource_metadata" not in auth.challenge(RESOURCE)  # no OAuth: nothing to discover


def test_the_metadata_url_inserts_the_well_known_path_before_the_resource_s_path():
    assert (
        resource_metadata_url(RESOURCE)
        == "https://skill.example.com/.well-known/oauth-protected-resource/mcp"
    )
