"""`[functions.NAME]`, `[skill] development` and ./dispatch.toml: a project of your own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from skill.settings import DEVELOPMENT_SKILL_ID, ConfigError, load_settings
from skill.settings.embedded import SIMULATOR_API_ORIGIN


def project(tmp_path: Path, text: str, *functions: str) -> Path:
    """A project folder: dispatch.toml and functions/NAME/function.py for each name."""
    for name in functions:
        folder = tmp_path / "functions" / name
        folder.mkdir(parents=True)
        (folder / "function.py").write_text("")
    path = tmp_path / "dispatch.toml"
    path.write_text(text)
    return path


def refused(path: Path, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.key == key, caught.value
    assert says in caught.value.reason, caught.value


def test_a_function_is_found_in_its_folder_and_its_route_goes_to_its_port(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    path = project(
        tmp_path,
        '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\n\n'
        '[events.pushes]\nsource = "github"\nhost = "hello"\n\n'
        f'[triggers.github]\nsecret_file = "{secret}"\n',
        "hello",
    )
    settings = load_settings(path, environ={})
    (hello,) = settings.functions
    assert hello.name == "hello"
    assert hello.dir == (tmp_path / "functions" / "hello").resolve()
    assert hello.command == ("python", "function.py")
    route = settings.routes["HelloIntent"]
    assert (route.host, route.port) == ("127.0.0.1", hello.port)
    assert (settings.rules["pushes"].route.host, settings.rules["pushes"].route.port) == (
        "127.0.0.1",
        hello.port,
    )
    assert settings.server.host == "127.0.0.1"  # loopback when not given


def test_a_node_folder_is_served_by_node_and_a_command_may_be_given(tmp_path):
    (tmp_path / "functions" / "weather").mkdir(parents=True)
    (tmp_path / "functions" / "weather" / "index.js").write_text("")
    (tmp_path / "other").mkdir()
    path = project(
        tmp_path,
        '[functions.weather]\n\n[functions.own]\ndir = "other"\ncommand = ["./serve", "-q"]\n'
        'env = {GREETING = "hi"}\n',
    )
    weather, own = load_settings(path, environ={}).functions
    assert weather.command == ("node", "index.js")
    assert own.dir == (tmp_path / "other").resolve()
    assert own.command == ("./serve", "-q") and own.env == {"GREETING": "hi"}
    assert weather.port != own.port


def test_relative_folders_are_the_configuration_files_own(tmp_path, monkeypatch):
    (tmp_path / "models" / "interactionModels" / "custom").mkdir(parents=True)
    path = project(
        tmp_path, '[skill]\ninteraction_models = "models"\n\n[functions.hello]\n', "hello"
    )
    monkeypatch.chdir(Path(sys.prefix))  # anywhere but the project
    settings = load_settings(path, environ={})
    assert settings.skill.models_dir == tmp_path / "models"
    assert settings.functions[0].dir == (tmp_path / "functions" / "hello").resolve()


@pytest.mark.parametrize(
    "text, key, says",
    [
        ("[functions.Hello]\n", "functions.Hello", "lower-case letters"),
        ("[functions.hello]\nport = 1\n", "functions.hello.port", "unknown key"),
        ("[functions.gone]\n", "functions.gone.dir", "no such folder"),
        ("[functions.hello]\ncommand = []\n", "functions.hello.command", "non-empty list"),
        ("[functions.hello]\nenv = {A = 1}\n", "functions.hello.env", "table of strings"),
        (
            '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\nport = 9101\n',
            "intents.HelloIntent.port",
            "the server picks its port",
        ),
        (
            '[server]\nhost = "0.0.0.0"\n\n[functions.hello]\n',
            "functions",
            "need a loopback [server] host",
        ),
    ],
)
def test_a_bad_function_entry_fails_at_start_naming_its_key(tmp_path, text, key, says):
    refused(project(tmp_path, text, "hello"), key, says)


def test_a_folder_with_neither_language_needs_a_command(tmp_path):
    (tmp_path / "functions" / "bare").mkdir(parents=True)
    refused(
        project(tmp_path, "[functions.bare]\n"),
        "functions.bare.command",
        "neither function.py nor index.js",
    )


def test_development_is_one_key_for_the_dev_ca_its_skill_id_and_the_console(tmp_path):
    path = project(
        tmp_path, '[skill]\ndevelopment = true\napplication_ids = ["amzn1.ask.skill.x"]\n'
    )
    settings = load_settings(path, environ={})
    assert settings.trust_dev_ca
    assert settings.skill.application_ids == ("amzn1.ask.skill.x", DEVELOPMENT_SKILL_ID)
    assert settings.console.enabled
    assert settings.server.host == "127.0.0.1"
    assert SIMULATOR_API_ORIGIN in settings.dispatch.progressive_hosts


def test_development_may_keep_the_console_off(tmp_path):
    path = project(tmp_path, "[skill]\ndevelopment = true\n\n[console]\nenabled = false\n")
    assert not load_settings(path, environ={}).console.enabled


def test_without_development_nothing_is_trusted_unasked(tmp_path):
    settings = load_settings(project(tmp_path, "[skill]\n"), environ={})
    assert not settings.trust_dev_ca and not settings.console.enabled
    assert settings.server.host == "0.0.0.0"


def test_development_serves_on_loopback_only(tmp_path):
    path = project(tmp_path, '[server]\nhost = "0.0.0.0"\n\n[skill]\ndevelopment = true\n')
    refused(path, "skill.development", "loopback only")
    path.write_text("[skill]\ndevelopment = true\n")
    with pytest.raises(ConfigError, match="loopback only"):
        load_settings(path, environ={"FUNKER_DISPATCH_SERVER_HOST": "0.0.0.0"})


def test_the_project_folders_dispatch_toml_is_read_when_no_file_is_named(tmp_path, monkeypatch):
    project(tmp_path, "[skill]\ndevelopment = true\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).source == "dispatch.toml"
    other = tmp_path / "other.toml"
    other.write_text("")
    assert load_settings(environ={"FUNKER_DISPATCH_CONFIG": str(other)}).source == str(other)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_settings(environ={}).embedded
