"""The embedded default: what `make run` serves when no configuration is given.

The example functions on loopback ports picked free at load (a second
checkout or a test run does not collide with a running `make run`), the
development CA trusted, every event endpoint on with development credentials,
the console on, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dispatch.registry import parse_route
from skill.settings.functions import free_port
from skill.settings.mcp import McpSettings
from skill.settings.sections import (
    EMBEDDED_SOURCE,
    ConsoleSettings,
    DispatchSettings,
    LocalFunction,
    ServerSettings,
    Settings,
    SkillSettings,
)
from skill.settings.triggers import (
    EventBridgeTriggerSettings,
    GitHubTriggerSettings,
    SnsTriggerSettings,
    TriggerSettings,
)

#: The fixed skill id of the embedded default (printed at start).
DEVELOPMENT_SKILL_ID = "amzn1.ask.skill.00000000-0000-4000-8000-000000000000"

#: Where `simulate` and `dialog` serve their stand-in for Alexa's directive API (progressive
#: responses). A fixed port, because the server and the tools load the embedded default
#: separately and must agree on it; the embedded default lists it in `progressive_hosts`.
SIMULATOR_API_ORIGIN = "http://127.0.0.1:3009"

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "functions"

# Environment of an example function: spacecount is slow on purpose, as the original's remote
# API was, so `make run` + `dialog` shows a progressive response (SPACECOUNT_DELAY=0 turns it off).
EMBEDDED_FUNCTION_ENV: dict[str, dict[str, str]] = {"spacecount": {"SPACECOUNT_DELAY": "2"}}

# intent or request type -> (example function folder, extra route keys)
EMBEDDED_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "SpaceCountIntent": ("spacecount", {"timeout": 3.0}),
    "HelloIntent": ("hello", {}),
    "HostnameIntent": ("hostname", {}),
    "CaptainsIntent": (
        "captains",
        {
            "arguments": ["session", "request", "version"],
            "speech": "There are {total_captains} Docker captains.",
        },
    ),
    # The two faces of one function: events go in (EMBEDDED_RULES), Alexa asks.
    "AlarmStatusIntent": ("alarms", {}),
    "UploadsIntent": ("uploads", {}),
    "LastDeployIntent": ("deploys", {}),
}

#: The development topic the embedded default allowlists; `events send` publishes to it.
DEVELOPMENT_TOPIC = "arn:aws:sns:us-east-1:123456789012:funker-dispatch-dev"
#: The embedded default's EventBridge API key and GitHub webhook secret: development only, on
#: loopback; `events send` authenticates with them. A real config reads its own from files.
DEVELOPMENT_EVENTBRIDGE_API_KEY = "funker-dispatch-development-api-key"
DEVELOPMENT_GITHUB_SECRET = b"funker-dispatch-development-webhook-secret"
# rule name -> (example function folder, rule keys): the events the example functions remember.
EMBEDDED_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "alarms": ("alarms", {"source": "cloudwatch"}),
    "uploads": ("uploads", {"source": "s3", "event": "ObjectCreated:*"}),
    "deploys": ("deploys", {"source": "github", "event": "push"}),
    # Examples of the two EventBridge sources, so `events send eventbridge|dynamodb` reaches a
    # function: deploys answers them and keeps nothing. Point such rules at your own functions.
    "instances": ("deploys", {"source": "eventbridge", "event_source": "aws.ec2"}),
    "orders": ("deploys", {"source": "dynamodb", "table": "Orders"}),
}


def embedded_default() -> Settings:
    """Example functions on loopback ports, dev CA trusted, bound to 127.0.0.1.

    Ports are picked free at load time so a second checkout or a test run
    does not collide with a running `make run`. A function serving both an
    intent and a rule is one process on one port. SNS is on with the
    development topic allowlisted; confirmations are only logged, so nothing
    reaches AWS. EventBridge and GitHub are on with development credentials
    (`events send` uses the same).
    """
    from triggers.rules import parse_rule

    ports: dict[str, int] = {}
    for folder, _ in (*EMBEDDED_ROUTES.values(), *EMBEDDED_RULES.values()):
        ports.setdefault(folder, free_port())
    functions = [
        LocalFunction(
            folder,
            EXAMPLES / folder,
            ("python", "function.py"),
            port,
            # The operator's environment wins over the example's defaults (SPACECOUNT_DELAY=0).
            {k: os.environ.get(k, v) for k, v in EMBEDDED_FUNCTION_ENV.get(folder, {}).items()},
        )
        for folder, port in ports.items()
    ]
    routes = {}
    for intent, (folder, extra) in EMBEDDED_ROUTES.items():
        port = ports[folder]
        routes[intent] = parse_route(
            intent, {"host": "127.0.0.1", "port": port, **extra}, default_port=port
        )
    rules = {}
    for name, (folder, table) in EMBEDDED_RULES.items():
        port = ports[folder]
        rules[name] = parse_rule(
            name, {"host": "127.0.0.1", "port": port, **table}, default_port=port
        )
    return Settings(
        server=ServerSettings(host="127.0.0.1", port=3000, workers=1, threads=8),
        skill=SkillSettings(application_ids=(DEVELOPMENT_SKILL_ID,)),
        # The simulator's stand-in for Alexa's API may receive progressive responses.
        dispatch=DispatchSettings(progressive_hosts=(SIMULATOR_API_ORIGIN,)),
        routes=routes,
        source=EMBEDDED_SOURCE,
        embedded=True,
        functions=tuple(functions),
        trust_dev_ca=True,
        triggers=TriggerSettings(
            sns=SnsTriggerSettings(topics=(DEVELOPMENT_TOPIC,), confirm="log"),
            eventbridge=EventBridgeTriggerSettings(api_key=DEVELOPMENT_EVENTBRIDGE_API_KEY),
            github=GitHubTriggerSettings(secret=DEVELOPMENT_GITHUB_SECRET),
        ),
        rules=rules,
        console=ConsoleSettings(enabled=True),  # `make run` is a developer's own machine
        # The functions as MCP tools, behind a development token `make run` prints.
        mcp=McpSettings(enabled=True, development_token=True),
    )
