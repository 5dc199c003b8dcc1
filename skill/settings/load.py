"""Settings from a file, the environment and flags: `load_settings`, and the checks at start.

The one place that reads the TOML file, the environment and the command
line's flags, in that order, each winning over the one before; every rule
that spans keys is checked here once, so bad configuration fails at start
naming the file, the key and the reason, never at the first request.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dispatch.registry import RouteError, parse_route
from skill.settings.embedded import embedded_default
from skill.settings.functions import attach_routes, functions_from_mapping
from skill.settings.mcp import check_mcp, mcp_credentials, mcp_from_mapping
from skill.settings.secrets import check_secret_file, read_secret
from skill.settings.sections import (
    CONSOLE_KEYS,
    DISPATCH_KEYS,
    SECTIONS,
    SERVER_KEYS,
    SKILL_KEYS,
    VERIFICATION_KEYS,
    ConsoleSettings,
    DispatchSettings,
    ServerSettings,
    Settings,
    SkillSettings,
    VerificationSettings,
    is_loopback,
)
from skill.settings.triggers import (
    TRIGGER_SECRET_ENV,
    check_triggers,
    trigger_credentials,
    triggers_from_mapping,
)
from skill.settings.values import ConfigError, parse_section, quoted, read_table

ENV_PREFIX = "FUNKER_DISPATCH_"
#: Read from the working folder when neither --config nor FUNKER_DISPATCH_CONFIG names a file.
PROJECT_CONFIG = "dispatch.toml"
RESERVED_ENV = frozenset({"FUNKER_DISPATCH_CONFIG", "FUNKER_DISPATCH_HOME"})


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load settings: file (or the embedded default), then environment, then flags.

    The file is `path`, else $FUNKER_DISPATCH_CONFIG, else ./dispatch.toml when it exists;
    with none of them, the embedded default.

    `overrides` are `[server]` keys from command-line flags (None values ignored).
    Raises ConfigError naming the file, key and reason.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get("FUNKER_DISPATCH_CONFIG") or None
    if path is None and Path(PROJECT_CONFIG).is_file():
        path = PROJECT_CONFIG  # a project's folder, as `funker-dispatch new` makes it
    settings = embedded_default() if path is None else _from_file(Path(path))
    settings = _apply_environment(settings, environ)
    settings = trigger_credentials(settings, environ)
    home = environ.get("FUNKER_DISPATCH_HOME")  # else the usual default (verification.devca)
    settings = mcp_credentials(settings, Path(home) if home else None)
    settings = _apply_overrides(settings, overrides or {})
    return _check(_development(settings))


def _development(settings: Settings) -> Settings:
    """`[skill] development = true`: what the embedded default does for the examples, for
    your own project. The dev CA is trusted besides the usual roots (a real Alexa request
    still verifies), and its skill id accepted besides `application_ids`."""
    if not settings.skill.development:
        return settings
    from skill.settings.embedded import DEVELOPMENT_SKILL_ID, SIMULATOR_API_ORIGIN

    ids = settings.skill.application_ids
    hosts = settings.dispatch.progressive_hosts
    return replace(
        settings,
        trust_dev_ca=True,
        skill=replace(
            settings.skill,
            application_ids=ids if DEVELOPMENT_SKILL_ID in ids else (*ids, DEVELOPMENT_SKILL_ID),
        ),
        # The tools' stand-in for Alexa's API receives the progressive responses.
        dispatch=replace(
            settings.dispatch,
            progressive_hosts=hosts
            if SIMULATOR_API_ORIGIN in hosts
            else (*hosts, SIMULATOR_API_ORIGIN),
        ),
    )


def _from_file(path: Path) -> Settings:
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "-", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "-", f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    return settings_from_mapping(data, source, path.resolve().parent)


def settings_from_mapping(
    data: Mapping[str, Any], source: str, base: Path | None = None
) -> Settings:
    """Settings from an already-parsed TOML document; relative paths of folders (the
    interaction models, `[functions]` dirs) are taken from `base`, the file's folder."""
    base = Path.cwd() if base is None else base
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(source, section, f"unknown section (allowed: {sorted(SECTIONS)})")
    dispatch = parse_section(data, "dispatch", DISPATCH_KEYS, DispatchSettings, source)
    verification_table = dict(read_table(data, "verification", source))
    local_chains = verification_table.pop("local_chains", {})
    if not isinstance(local_chains, Mapping) or not all(
        isinstance(v, str) for v in local_chains.values()
    ):
        raise ConfigError(source, "verification.local_chains", "must map URLs to PEM file paths")
    verification = replace(
        parse_section(
            {"verification": verification_table},
            "verification",
            VERIFICATION_KEYS,
            VerificationSettings,
            source,
        ),
        local_chains=dict(local_chains),
    )
    routes = {}
    for name, table in read_table(data, "intents", source).items():
        if not isinstance(table, Mapping):
            raise ConfigError(source, f"intents.{name}", "must be a table")
        try:
            routes[name] = parse_route(name, table, default_port=dispatch.function_port)
        except RouteError as exc:
            raise ConfigError(source, f"intents.{quoted(name)}.{exc.key}", exc.reason) from None
    triggers, rules = triggers_from_mapping(data, source, default_port=dispatch.function_port)
    functions = functions_from_mapping(data, source, base)
    routes = attach_routes(functions, routes, data.get("intents", {}), source, "intents")
    rule_routes = attach_routes(
        functions,
        {name: rule.route for name, rule in rules.items()},
        data.get("events", {}),
        source,
        "events",
    )
    rules = {name: replace(rule, route=rule_routes[name]) for name, rule in rules.items()}
    skill = parse_section(data, "skill", SKILL_KEYS, SkillSettings, source)
    if skill.interaction_models and not Path(skill.interaction_models).is_absolute():
        skill = replace(skill, interaction_models=str(base / skill.interaction_models))
    server = parse_section(data, "server", SERVER_KEYS, ServerSettings, source)
    server_table = data.get("server", {})
    if (skill.development or functions) and "host" not in server_table:
        server = replace(server, host="127.0.0.1")  # a developer's machine: loopback by default
    console = parse_section(data, "console", CONSOLE_KEYS, ConsoleSettings, source)
    if skill.development and "enabled" not in data.get("console", {}):
        console = replace(console, enabled=True)
    return Settings(
        server=server,
        skill=skill,
        dispatch=dispatch,
        verification=verification,
        routes=routes,
        source=source,
        triggers=triggers,
        rules=rules,
        console=console,
        functions=functions,
        mcp=mcp_from_mapping(data, source),
    )


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    server: dict[str, Any] = {}
    skill: dict[str, Any] = {}
    dispatch: dict[str, Any] = {}
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable in RESERVED_ENV:
            continue
        if variable in TRIGGER_SECRET_ENV:  # read with the trigger's table, below
            continue
        key = variable[len(ENV_PREFIX) :].lower()
        if key.startswith("server_") and key[len("server_") :] in SERVER_KEYS:
            key = key[len("server_") :]
            target, parser = server, SERVER_KEYS[key].parse
        elif key in SKILL_KEYS:
            target, parser = skill, SKILL_KEYS[key].parse
        elif key in DISPATCH_KEYS:
            target, parser = dispatch, DISPATCH_KEYS[key].parse
        else:
            raise ConfigError("environment", variable, "unknown setting")
        if not raw.strip():
            # A compose file interpolating an unset variable gives "": it must
            # never silently empty an allowlist or reset a value.
            raise ConfigError(
                "environment", variable, "is set but empty (unset it, or give a value)"
            )
        try:
            target[key] = parser(raw)
        except ValueError as exc:
            raise ConfigError("environment", variable, str(exc)) from None
    return replace(
        settings,
        server=replace(settings.server, **server),
        skill=replace(settings.skill, **skill),
        dispatch=replace(settings.dispatch, **dispatch),
    )


def _apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    server = {}
    for key, value in overrides.items():
        if value is None:
            continue
        try:
            server[key] = SERVER_KEYS[key].parse(value)
        except ValueError as exc:
            raise ConfigError("command line", f"--{key}", str(exc)) from None
    return replace(settings, server=replace(settings.server, **server))


def _check(settings: Settings) -> Settings:
    """Cross-key rules, checked once at start; fills in derived values."""
    server = settings.server
    if (server.certfile is None) != (server.keyfile is None):
        raise ConfigError(settings.source, "server.certfile", "certfile and keyfile go together")
    for key in ("certfile", "keyfile"):
        value = getattr(server, key)
        if value is not None and not Path(value).is_file():
            raise ConfigError(settings.source, f"server.{key}", f"no such file: {value}")
    if server.certfile and server.keyfile:
        check_secret_file(server.keyfile, "server.keyfile", settings.source)
        _check_tls_pair(settings.source, server.certfile, server.keyfile)
    for index, root in enumerate(settings.verification.trusted_roots):
        _check_pem(settings.source, f"verification.trusted_roots[{index}]", root)
    for url, chain in settings.verification.local_chains.items():
        _check_pem(settings.source, f'verification.local_chains."{url}"', chain)
    check_triggers(settings)
    check_mcp(settings)
    models = settings.skill.models_dir
    if models is not None and not (models / "interactionModels" / "custom").is_dir():
        raise ConfigError(
            settings.source,
            "skill.interaction_models",
            f"{models} is not an ask-cli skill package (no interactionModels/custom/)",
        )
    if settings.dispatch.discovery == "docker" and settings.dispatch.discovery_socket is None:
        from dispatch.discovery import docker_socket

        try:
            docker_socket()
        except ValueError as exc:
            raise ConfigError("environment", "DOCKER_HOST", str(exc)) from None
    _check_progressive(settings)
    if settings.embedded and not is_loopback(server.host):
        raise ConfigError(
            settings.source,
            "server.host",
            f"the embedded default serves on loopback only, not {server.host!r}; "
            "pass --config to serve elsewhere",
        )
    if settings.skill.development and not is_loopback(server.host):
        raise ConfigError(
            settings.source,
            "skill.development",
            f"development trusts the development CA, whose key is on this machine: it serves "
            f"on loopback only, not {server.host!r}",
        )
    if settings.functions and not is_loopback(server.host):
        # Children serve on loopback with no credentials: a server reachable from elsewhere
        # belongs on a swarm, with its functions as services.
        raise ConfigError(
            settings.source,
            "functions",
            f"[functions] run on this machine for development and need a loopback [server] "
            f"host, not {server.host!r}; deploy them as services for anything else",
        )
    if settings.console.enabled and not is_loopback(server.admin_host):
        # The console signs whatever it is asked to with the development CA and the
        # trigger credentials: reachable from another machine, it would sign for anyone.
        raise ConfigError(
            settings.source,
            "console.enabled",
            f"the console is a signing service and is served on a loopback [server] "
            f"admin_host only, not {server.admin_host!r}; turn it off or bind the admin "
            "listener to 127.0.0.1",
        )
    return replace(settings, server=_admin(settings.source, server))


def _check_progressive(settings: Settings) -> None:
    """A progressive response must be due before the answer's own deadline, or it never is."""
    dispatch = settings.dispatch
    if dispatch.connect_timeout >= dispatch.deadline:
        raise ConfigError(
            settings.source,
            "dispatch.connect_timeout",
            f"must be under dispatch.deadline ({dispatch.deadline:g} s): "
            "the next address needs time too",
        )
    if dispatch.progressive_after >= dispatch.deadline:
        raise ConfigError(
            settings.source,
            "dispatch.progressive_after",
            f"must be under dispatch.deadline ({dispatch.deadline:g} s), or 0 to turn it off",
        )
    for name, route in settings.routes.items():
        if not route.progressive_after:
            continue
        deadline = min(dispatch.deadline, route.timeout or dispatch.deadline)
        if route.progressive_after >= deadline:
            raise ConfigError(
                settings.source,
                f"intents.{quoted(name)}.progressive_after",
                f"must be under the route's deadline ({deadline:g} s), or 0 to turn it off",
            )


def _admin(source: str, server: ServerSettings) -> ServerSettings:
    """The admin listener's port (default: the effective public port + 1) and token."""
    port = server.admin_port
    if port is None:
        port = server.port + 1 if server.port else 0  # an ephemeral public port: no default
        if port > 65535:
            raise ConfigError(
                source, "server.admin_port", "the default (port + 1) would be 65536; set it"
            )
    if port and port == server.port:
        raise ConfigError(source, "server.admin_port", "must differ from server.port")
    token = read_secret({}, None, server.admin_token_file, "server.admin_token_file", source)
    return replace(server, admin_port=port, admin_token=token)


def _check_tls_pair(source: str, certfile: str, keyfile: str) -> None:
    """The certificate chain and its private key load together, as the server will load them."""
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ConfigError(
            source,
            "server.keyfile",
            f"{certfile} and {keyfile} do not load as a TLS pair: {reason}",
        ) from None
    except OSError as exc:
        raise ConfigError(source, "server.certfile", f"cannot read: {exc.strerror}") from None


def _check_pem(source: str, key: str, path: str) -> None:
    """A PEM file of certificates that exists and parses, or a ConfigError."""
    from cryptography import x509

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from None
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(source, key, f"{path} holds no PEM certificate") from None
