"""Settings: TOML, environment and flags, and bad configuration failing at start."""

from pathlib import Path

import pytest

from dispatch.registry import NoRoute, Router
from skill.settings import DEVELOPMENT_SKILL_ID, ConfigError, load_settings

EXAMPLE = """
[server]
host = "0.0.0.0"
port = 3000
workers = 2
threads = 8

[skill]
application_ids = ["amzn1.ask.skill.4a71a0a0-d0e6-4ca7-a99b-2715e5772755"]
verify_signature = true
verify_timestamp = true

[dispatch]
deadline = 6.5
function_port = 9999
naming = "intent"

[verification]
trusted_roots = []
allow_sha1 = false
prefetch = []

[intents.SpaceCountIntent]
host = "spacecount"
timeout = 3.0

[intents.CaptainsIntent]
host = "captains"
arguments = ["session", "request", "version"]
speech = "There are {total_captains} Docker captains."

[intents."AMAZON.HelpIntent"]
host = "help"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dispatch.toml"
    path.write_text(text)
    return path


def test_design_example_configuration_loads(tmp_path):
    settings = load_settings(write(tmp_path, EXAMPLE), environ={})
    assert settings.server.workers == 2
    assert settings.skill.application_ids == (
        "amzn1.ask.skill.4a71a0a0-d0e6-4ca7-a99b-2715e5772755",
    )
    space = settings.routes["SpaceCountIntent"]
    assert (space.host, space.port, space.timeout) == ("spacecount", 9999, 3.0)
    captains = settings.routes["CaptainsIntent"]
    assert captains.arguments == ("session", "request", "version")
    assert captains.speech == "There are {total_captains} Docker captains."
    assert settings.routes["AMAZON.HelpIntent"].host == "help"
    assert not settings.embedded


def test_environment_wins_over_file_and_flags_win_over_both(tmp_path):
    environ = {
        "FUNKER_DISPATCH_VERIFY_SIGNATURE": "false",
        "FUNKER_DISPATCH_APPLICATION_IDS": "amzn1.ask.skill.a, amzn1.ask.skill.b",
        "FUNKER_DISPATCH_DEADLINE": "5",
        "FUNKER_DISPATCH_SERVER_WORKERS": "4",
        "FUNKER_DISPATCH_SERVER_PORT": "4000",
    }
    settings = load_settings(write(tmp_path, EXAMPLE), environ=environ, overrides={"port": 5000})
    assert settings.skill.verify_signature is False
    assert settings.skill.application_ids == ("amzn1.ask.skill.a", "amzn1.ask.skill.b")
    assert settings.dispatch.deadline == 5.0
    assert settings.server.workers == 4
    assert settings.server.port == 5000


def test_config_file_comes_from_environment_when_no_flag(tmp_path):
    path = write(tmp_path, EXAMPLE)
    settings = load_settings(environ={"FUNKER_DISPATCH_CONFIG": str(path)})
    assert settings.source == str(path)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[server]\nworkerz = 2\n", "server.workerz", "unknown key"),
        ("[server]\nport = 'x'\n", "server.port", "integer"),
        ("[skill]\nverify_signature = 'yes please'\n", "skill.verify_signature", "true or false"),
        ("[skill]\napplication_ids = ['nope']\n", "skill.application_ids", "not an Alexa skill id"),
        ("[dispatch]\ndeadline = -1\n", "dispatch.deadline", "positive"),
        ("[dispatch]\nnaming = 'dns'\n", "dispatch.naming", "one of"),
        ("[intents.X]\nhots = 'x'\n", "intents.X.hots", "unknown key"),
        ("[intents.X]\nport = 1\n", "intents.X.host", "host"),
        ("[intents.X]\nhost = 'x'\ntimeout = 0\n", "intents.X.timeout", "positive"),
        ("[intents.X]\nhost = 'x'\nconcurrency = 0\n", "intents.X.concurrency", "positive"),
        ("[intents.X]\nhost = 'x'\narguments = 'request'\n", "intents.X.arguments", "list"),
        ("[intents.X]\nhost = 'x'\nspeech = 3\n", "intents.X.speech", "string"),
        ("[intents.X]\nhost = 'x'\nprobe = 'ping'\n", "intents.X.probe", "connect"),
        ('[intents."AMAZON.HelpIntent"]\nhost = 1\n', 'intents."AMAZON.HelpIntent".host', "host"),
        # getaddrinfo reads an all-digit name as an IPv4 number: 2130706433 is 127.0.0.1.
        ("[intents.X]\nhost = '2130706433'\n", "intents.X.host", "host"),
        ("[intents.X]\nhost = '127.1'\n", "intents.X.host", "host"),
        # A DNS label is at most 63 characters; getaddrinfo raises UnicodeError past that.
        (f"[intents.X]\nhost = '{'a' * 64}.example'\n", "intents.X.host", "host"),
        ("[intents.X]\nhost = 'a..b'\n", "intents.X.host", "host"),
        (
            "[verification]\ntrusted_roots = ['/nonexistent.pem']\n",
            "verification.trusted_roots[0]",
            "cannot read",
        ),
        ("[server]\ncertfile = '/nonexistent.pem'\n", "server.certfile", "go together"),
        ("[mystery]\n", "mystery", "unknown section"),
        ("[skill]\ninteraction_models = '/nonexistent'\n", "skill.interaction_models", "ask-cli"),
        ("[server]\nforwarded_allow_ips = ['proxy']\n", "server.forwarded_allow_ips", "network"),
        ("[server\n", "-", "not valid TOML"),
    ],
)
def test_bad_configuration_names_file_key_and_reason(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert error.value.source == str(path)
    assert error.value.key == key
    assert reason in error.value.reason
    assert str(path) in str(error.value)


def test_unknown_environment_setting_is_refused(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, EXAMPLE), environ={"FUNKER_DISPATCH_DEADLINES": "3"})
    assert error.value.key == "FUNKER_DISPATCH_DEADLINES"


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, EXAMPLE), environ={"FUNKER_DISPATCH_SERVER_WORKERS": "many"})
    assert error.value.key == "FUNKER_DISPATCH_SERVER_WORKERS"


def test_missing_file_fails_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_embedded_default_is_loopback_with_the_development_skill_id():
    settings = load_settings(environ={})
    assert settings.embedded and settings.trust_dev_ca
    assert settings.server.host == "127.0.0.1"
    assert settings.skill.application_ids == (DEVELOPMENT_SKILL_ID,)
    assert settings.skill.verify_signature is True
    assert {f.name for f in settings.functions} == {
        *("spacecount", "hello", "hostname", "captains", "alarms", "uploads", "deploys")
    }
    assert all(route.host == "127.0.0.1" for route in settings.routes.values())


def test_embedded_default_refuses_a_public_host():
    with pytest.raises(ConfigError, match="loopback"):
        load_settings(environ={}, overrides={"host": "0.0.0.0"})


def test_embedded_default_takes_environment_settings():
    settings = load_settings(environ={"FUNKER_DISPATCH_DEADLINE": "2"})
    assert settings.dispatch.deadline == 2.0


def test_naming_convention_applies_to_custom_intents_only(tmp_path):
    settings = load_settings(write(tmp_path, EXAMPLE), environ={})
    router = Router(settings.routes, naming="intent", function_port=9999)
    assert router.resolve("HostnameIntent").host == "HostnameIntent"
    assert router.resolve("HostnameIntent").source == "naming"
    for name in ("AMAZON.StopIntent", "LaunchRequest", "AudioPlayer.PlaybackStarted"):
        with pytest.raises(NoRoute):
            router.resolve(name)
    assert router.resolve("AMAZON.HelpIntent").source == "config"


def test_naming_convention_only_produces_host_names_that_start_with_a_letter():
    router = Router({}, naming="intent")
    # All digits would reach an address (2130706433 is 127.0.0.1 to getaddrinfo); a label
    # over 63 characters is no DNS name; a leading digit, underscore or dash is not a name.
    for name in ("2130706433", "0x7f000001", "1Intent", "_Intent", "-Intent", "A" * 64):
        with pytest.raises(NoRoute):
            router.resolve(name)
    assert router.resolve("A" * 63).host == "A" * 63
    assert router.resolve("Hello_World-2").host == "Hello_World-2"


def test_configured_ip_literals_and_long_dotted_names_are_accepted(tmp_path):
    text = (
        "[intents.A]\nhost = '10.0.0.5'\n"
        "[intents.B]\nhost = '::1'\n"
        "[intents.C]\nhost = 'fd00::5'\n"
        f"[intents.D]\nhost = '{'a' * 63}.{'b' * 63}.example'\n"
        "[intents.E]\nhost = '3d-render'\n"
    )
    settings = load_settings(write(tmp_path, text), environ={})
    assert {name: route.host for name, route in settings.routes.items()} == {
        "A": "10.0.0.5",
        "B": "::1",
        "C": "fd00::5",
        "D": f"{'a' * 63}.{'b' * 63}.example",
        "E": "3d-render",
    }


def test_naming_none_refuses_unrouted_intents(tmp_path):
    text = EXAMPLE.replace('naming = "intent"', 'naming = "none"')
    settings = load_settings(write(tmp_path, text), environ={})
    router = Router(settings.routes, naming=settings.dispatch.naming)
    with pytest.raises(NoRoute):
        router.resolve("HostnameIntent")
    assert router.resolve("SpaceCountIntent").host == "spacecount"


def test_welcome_lists_samples_from_the_configured_interaction_models(tmp_path):
    import json
    import shutil

    from skill.app import create_app

    models = tmp_path / "models"
    shutil.copytree(Path(__file__).resolve().parent.parent / "interaction_models", models)
    en_us = models / "interactionModels" / "custom" / "en-US.json"
    data = json.loads(en_us.read_text())
    for intent in data["interactionModel"]["languageModel"]["intents"]:
        if intent["name"] == "HostnameIntent":
            intent["samples"] = ["who served this answer"]
    en_us.write_text(json.dumps(data))
    config = write(
        tmp_path,
        f'[skill]\ninteraction_models = "{models}"\nverify_signature = false\n'
        "verify_timestamp = false\n",
    )
    app = create_app(load_settings(config, environ={}))
    body = {
        "version": "1.0",
        "request": {
            "type": "LaunchRequest",
            "requestId": "r",
            "locale": "en-US",
            "timestamp": "2026-01-01T00:00:00Z",
        },
        "context": {"System": {"application": {"applicationId": "amzn1.ask.skill.x"}}},
    }
    reply = app.test_client().post("/", json=body).get_json()
    assert "who served this answer" in reply["response"]["outputSpeech"]["ssml"]


# --- bounded values (docs/robustness.md) and the admin listener (§7) ----------------------


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[server]\ngraceful_timeout = inf\n", "server.graceful_timeout", "finite"),
        ("[server]\ngraceful_timeout = 1e300\n", "server.graceful_timeout", "at most"),
        ("[server]\nread_timeout = nan\n", "server.read_timeout", "finite"),
        ("[server]\nread_timeout = 61\n", "server.read_timeout", "at most"),
        ("[dispatch]\ndeadline = inf\n", "dispatch.deadline", "finite"),
        ("[dispatch]\ndeadline = 1e300\n", "dispatch.deadline", "under 8"),
        ("[dispatch]\ndeadline = 8\n", "dispatch.deadline", "under 8"),
        ("[dispatch]\ndiscovery_interval = inf\n", "dispatch.discovery_interval", "finite"),
        ("[intents.X]\nhost = 'x'\ntimeout = inf\n", "intents.X.timeout", "finite"),
        ("[intents.X]\nhost = 'x'\ntimeout = 1e300\n", "intents.X.timeout", "at most"),
        ("[server]\npath = '/<path:rest>'\n", "server.path", "plain path"),
        ("[server]\npath = '/skill/../x'\n", "server.path", "plain path"),
        ("[server]\npath = '//x'\n", "server.path", "plain path"),
        ("[server]\npath = '/healthz'\n", "server.path", "reserved"),
        ("[server]\npath = '/events/sns'\n", "server.path", "reserved"),
        ("[server]\nadmin_port = 70000\n", "server.admin_port", "integer"),
        ("[server]\nport = 3000\nadmin_port = 3000\n", "server.admin_port", "differ"),
        ("[server]\nport = 65535\n", "server.admin_port", "65536"),
        ("[server]\nadmin_token_file = '/nonexistent'\n", "server.admin_token_file", "cannot read"),
    ],
)
def test_unbounded_or_unsafe_values_fail_at_start_naming_the_key(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert (error.value.key, error.value.source) == (key, str(path))
    assert reason in error.value.reason


@pytest.mark.parametrize(
    "variable",
    ["FUNKER_DISPATCH_DEADLINE", "FUNKER_DISPATCH_SERVER_GRACEFUL_TIMEOUT"],
)
def test_an_infinite_value_from_the_environment_is_refused(tmp_path, variable):
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, EXAMPLE), environ={variable: "inf"})
    assert error.value.key == variable


def test_an_empty_environment_variable_never_empties_the_allowlist(tmp_path):
    # What a compose file gives for ${UNSET_VARIABLE}: it must not mean "any skill".
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, EXAMPLE), environ={"FUNKER_DISPATCH_APPLICATION_IDS": ""})
    assert error.value.key == "FUNKER_DISPATCH_APPLICATION_IDS"
    assert "empty" in error.value.reason


def test_admin_listener_defaults_to_loopback_on_the_effective_port_plus_one(tmp_path):
    settings = load_settings(
        write(tmp_path, EXAMPLE),
        environ={"FUNKER_DISPATCH_SERVER_PORT": "4000"},
        overrides={"port": 5000},
    )
    assert (settings.server.admin_host, settings.server.admin_port) == ("127.0.0.1", 5001)
    assert settings.server.read_timeout == 10.0


def test_admin_port_zero_turns_the_admin_listener_off(tmp_path):
    settings = load_settings(write(tmp_path, "[server]\nadmin_port = 0\n"), environ={})
    assert settings.server.admin_port == 0


def test_admin_token_is_read_at_start_and_never_shown(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    settings = load_settings(
        write(tmp_path, f'[server]\nadmin_token_file = "{token}"\n'), environ={}
    )
    assert settings.server.admin_token == "s3cret-token"
    assert "s3cret" not in repr(settings)


def test_an_empty_admin_token_file_is_refused(tmp_path):
    token = tmp_path / "token"
    token.write_text("\n")
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, f'[server]\nadmin_token_file = "{token}"\n'), environ={})
    assert error.value.key == "server.admin_token_file"
    assert "empty" in error.value.reason


def test_a_key_that_does_not_match_the_certificate_fails_at_start(tmp_path):
    from tests import pki

    root = pki.tls_root()
    one, other = pki.server_certificate(root), pki.server_certificate(root)
    (tmp_path / "cert.pem").write_bytes(one.pem)
    (tmp_path / "key.pem").write_bytes(other.key_pem)
    text = f'[server]\ncertfile = "{tmp_path / "cert.pem"}"\nkeyfile = "{tmp_path / "key.pem"}"\n'
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text), environ={})
    assert error.value.key == "server.keyfile"
    assert "TLS pair" in error.value.reason


def test_connect_timeout_defaults_to_half_a_second_and_reads_the_environment(tmp_path):
    assert load_settings(write(tmp_path, EXAMPLE), environ={}).dispatch.connect_timeout == 0.5
    environ = {"FUNKER_DISPATCH_CONNECT_TIMEOUT": "0.25"}
    settings = load_settings(write(tmp_path, EXAMPLE), environ=environ)
    assert settings.dispatch.connect_timeout == 0.25


@pytest.mark.parametrize("value", ["6.5", "7", "0", "-1", "nan"])
def test_connect_timeout_under_the_deadline_or_refused_by_name(tmp_path, value):
    text = EXAMPLE.replace("deadline = 6.5", f"deadline = 6.5\nconnect_timeout = {value}")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert caught.value.key == "dispatch.connect_timeout"
