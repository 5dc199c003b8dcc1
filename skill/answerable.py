"""Which of the model's custom intents no function could answer, and why.

On a developer's machine a route must reach something: a `[functions]` child, or a
host that resolves. The naming convention (a host named after the intent) works on a
swarm, where services are hosts, and never on loopback — without this check a new
intent routes silently to a name that does not resolve, and the user hears an apology
after the whole deadline. `serve` refuses to start in development with such an intent;
`check` warns about it anywhere.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from dispatch.registry import NoRoute, Router
from skill.settings import ConfigError, Settings


def unanswerable_intents(settings: Settings, models: Mapping[str, Any]) -> dict[str, str]:
    """Custom intent -> why no function can answer it (empty when every one can)."""
    router = Router(
        settings.routes,
        naming=settings.dispatch.naming,
        function_port=settings.dispatch.function_port,
    )
    children = {function.port for function in settings.functions}
    names = sorted({name for model in models.values() for name in model.samples})
    problems: dict[str, str] = {}
    resolved: dict[str, bool] = {}
    for name in names:
        if name.startswith("AMAZON."):
            continue  # answered by the skill itself unless routed on purpose
        try:
            route = router.resolve(name)
        except NoRoute:
            problems[name] = 'it has no route ([dispatch] naming is "none")'
            continue
        if route.host == "127.0.0.1" and route.port in children:
            continue
        if route.host not in resolved:
            resolved[route.host] = _resolves(route.host)
        if not resolved[route.host]:
            how = " (the naming convention)" if route.source == "naming" else ""
            problems[name] = f"its host {route.host!r}{how} does not resolve"
    return problems


def require_answerable(settings: Settings, models: Mapping[str, Any]) -> None:
    """In development, a ConfigError naming every intent no function can answer."""
    problems = unanswerable_intents(settings, models)
    if not problems:
        return
    listed = "; ".join(f"{name}: {why}" for name, why in problems.items())
    example = next(iter(problems))
    raise ConfigError(
        settings.source,
        "intents",
        f"in development every intent of the model needs a function that can answer it — "
        f'{listed}. Route it to one of your functions ([intents.{example}] host = "NAME" '
        f"with a [functions.NAME] entry), or create one: "
        f"funker-dispatch new function NAME --intent {example}",
    )


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True
