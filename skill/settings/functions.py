"""`[functions.NAME]`: your own functions, run by `serve` as child processes on loopback.

Each entry is a folder and the command that serves the funker protocol from it; the
server starts it on a free loopback port (told by `FUNKER_PORT`, and `FUNKER_HOST`
127.0.0.1), and a route or rule whose `host` names the entry goes to that port. The
ports are picked when the configuration is loaded, so every worker of one server agrees
on them; another process loading the same file (a tool) picks its own.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dispatch.registry import Route
from skill.settings.sections import LocalFunction
from skill.settings.values import ConfigError, quoted, reject_unknown

#: Keys of a `[functions.NAME]` table and what they are for (the reference lists these).
FUNCTION_KEYS: dict[str, str] = {
    "dir": "the function's folder (default `functions/NAME`, relative to the configuration file)",
    "command": 'what serves it, run in `dir` (default by language: `["python", "function.py"]`'
    ' or `["node", "index.js"]`; `python` is the dispatcher\'s own interpreter)',
    "env": "environment variables for it (a table of strings; the server's own are inherited)",
}

#: The file that tells a folder's language, and the command that serves it.
LANGUAGES: dict[str, tuple[str, ...]] = {
    "function.py": ("python", "function.py"),
    "index.js": ("node", "index.js"),
}

# A function's name is also a Docker service name and a route's host: DNS-label rules.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def functions_from_mapping(
    data: Mapping[str, Any], source: str, base: Path
) -> tuple[LocalFunction, ...]:
    """Every `[functions.NAME]` of a configuration file whose folder is `base`."""
    tables = data.get("functions", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(source, "functions", "must be a table of [functions.NAME] tables")
    return tuple(_function(name, table, source, base) for name, table in tables.items())


def _function(name: str, table: Any, source: str, base: Path) -> LocalFunction:
    key = f"functions.{quoted(name)}"
    if not _NAME.fullmatch(name):
        raise ConfigError(
            source, key, "a name is lower-case letters, digits and '-' (it is also a host name)"
        )
    if not isinstance(table, Mapping):
        raise ConfigError(source, key, "must be a table")
    reject_unknown(table, FUNCTION_KEYS, key, source)
    raw_dir = table.get("dir", f"functions/{name}")
    if not isinstance(raw_dir, str) or not raw_dir:
        raise ConfigError(source, f"{key}.dir", "must be a folder path")
    folder = (base / raw_dir).resolve()
    if not folder.is_dir():
        raise ConfigError(source, f"{key}.dir", f"no such folder: {folder}")
    command = table.get("command")
    if command is None:
        command = next((cmd for file, cmd in LANGUAGES.items() if (folder / file).is_file()), None)
        if command is None:
            raise ConfigError(
                source,
                f"{key}.command",
                f"{folder} has neither function.py nor index.js: give the command that serves it",
            )
    if (
        not isinstance(command, list | tuple)
        or not command
        or not all(isinstance(word, str) and word for word in command)
    ):
        raise ConfigError(source, f"{key}.command", "must be a non-empty list of strings")
    env = table.get("env", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigError(source, f"{key}.env", "must be a table of strings")
    return LocalFunction(name, folder, tuple(command), free_port(), dict(env))


def attach_routes(
    functions: tuple[LocalFunction, ...],
    routes: Mapping[str, Route],
    tables: Mapping[str, Any],
    source: str,
    section: str,
) -> dict[str, Route]:
    """Routes whose `host` names a function, sent to its loopback port.

    `tables` are the raw `[section.NAME]` tables: a port given there with a function's
    name as host is an error, since the server assigns the port.
    """
    ports = {function.name: function.port for function in functions}
    attached = {}
    for name, route in routes.items():
        if route.host in ports:
            table = tables.get(name, {})
            if isinstance(table, Mapping) and "port" in table:
                raise ConfigError(
                    source,
                    f"{section}.{quoted(name)}.port",
                    f"{route.host} is a [functions] entry: the server picks its port",
                )
            route = replace(route, host="127.0.0.1", port=ports[route.host])
        attached[name] = route
    return attached


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
