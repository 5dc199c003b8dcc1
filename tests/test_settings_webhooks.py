"""`[triggers.eventbridge]` and `[triggers.github]`: credentials read once at start, from a
file (Docker secrets) or the environment; a table without one, or a mistake, names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill.app import body_cap
from skill.settings import ConfigError, load_settings

BASE = '[skill]\napplication_ids = ["amzn1.ask.skill.test"]\n\n'


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None):
    path = tmp_path / "dispatch.toml"
    path.write_text(BASE + text)
    return load_settings(path, environ=environ or {})


def refused(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text, environ)
    return error.value


def secret(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_without_the_tables_neither_endpoint_exists(tmp_path):
    settings = load(tmp_path, "")
    assert settings.triggers.eventbridge is None and settings.triggers.github is None
    cap = body_cap(settings)
    assert cap("/events/eventbridge") == cap("/events/github") == 128 * 1024


def test_eventbridge_api_key_from_a_docker_secret_with_its_trailing_newline_stripped(tmp_path):
    key = secret(tmp_path, "key", "s3cr3t-key\n")
    eventbridge = load(
        tmp_path, f'[triggers.eventbridge]\napi_key_file = "{key}"\n'
    ).triggers.eventbridge
    assert eventbridge.api_key == "s3cr3t-key" and eventbridge.api_key_header == "x-api-key"
    assert (eventbridge.deadline, eventbridge.max_age) == (4.0, 86400)
    assert eventbridge.max_body_bytes == 1024 * 1024
    assert "s3cr3t" not in repr(eventbridge)


def test_only_one_newline_is_stripped(tmp_path):
    key = secret(tmp_path, "key", "line\n\n")
    error = refused(tmp_path, f'[triggers.eventbridge]\napi_key_file = "{key}"\n')
    assert error.key == "triggers.eventbridge.api_key_file"  # "line\n" ends in a newline


def test_the_eventbridge_api_key_may_come_from_the_environment_and_wins(tmp_path):
    key = secret(tmp_path, "key", "from-file")
    text = f'[triggers.eventbridge]\napi_key_header = "X-Funker-Key"\napi_key_file = "{key}"\n'
    settings = load(tmp_path, text, {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": "from-env"})
    assert settings.triggers.eventbridge.api_key == "from-env"
    only_env = load(
        tmp_path, "[triggers.eventbridge]\n", {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": "k"}
    )
    assert only_env.triggers.eventbridge.api_key == "k"


def test_eventbridge_basic_credentials(tmp_path):
    password = secret(tmp_path, "password", "pa:ss\n")
    text = f'[triggers.eventbridge]\nusername = "eventbridge"\npassword_file = "{password}"\n'
    eventbridge = load(tmp_path, text).triggers.eventbridge
    assert (eventbridge.username, eventbridge.password, eventbridge.api_key) == (
        "eventbridge",
        "pa:ss",
        None,
    )


def test_github_secret_from_a_file_or_the_environment(tmp_path):
    path = secret(tmp_path, "github", "It's a Secret to Everybody\n")
    github = load(tmp_path, f'[triggers.github]\nsecret_file = "{path}"\n').triggers.github
    assert github.secret == b"It's a Secret to Everybody"
    assert (github.deadline, github.max_body_bytes) == (8.0, 25 * 1024 * 1024)
    env = load(tmp_path, "[triggers.github]\n", {"FUNKER_DISPATCH_GITHUB_SECRET": "env"})
    assert env.triggers.github.secret == b"env"
    assert "Everybody" not in repr(github)


def test_each_endpoint_has_its_own_body_cap(tmp_path):
    path = secret(tmp_path, "github", "s")
    settings = load(
        tmp_path,
        f'[triggers.github]\nsecret_file = "{path}"\nmax_body_bytes = 2000000\n\n'
        "[triggers.eventbridge]\nmax_body_bytes = 300000\n",
        {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": "k"},
    )
    cap = body_cap(settings)
    assert (cap("/events/github"), cap("/events/eventbridge"), cap("/")) == (
        2000000,
        300000,
        128 * 1024,
    )


@pytest.mark.parametrize(
    ("text", "environ", "key"),
    [
        ("[triggers.eventbridge]\n", {}, "triggers.eventbridge.api_key_file"),
        ("[triggers.github]\n", {}, "triggers.github.secret_file"),
        (
            '[triggers.github]\nsecret_file = "/nonexistent/secret"\n',
            {},
            "triggers.github.secret_file",
        ),
        (
            "[triggers.github]\n",
            {"FUNKER_DISPATCH_GITHUB_SECRET": ""},
            "FUNKER_DISPATCH_GITHUB_SECRET",
        ),
        (
            "[triggers.eventbridge]\n",
            {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": " "},
            "FUNKER_DISPATCH_EVENTBRIDGE_API_KEY",
        ),
        (
            "[triggers.eventbridge]\n",
            {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": " padded"},
            "triggers.eventbridge.api_key_file",
        ),
        (
            "[triggers.eventbridge]\n",
            {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": "clé"},
            "triggers.eventbridge.api_key_file",
        ),
        ('[triggers.eventbridge]\nusername = "eb"\n', {}, "triggers.eventbridge.password_file"),
        (
            '[triggers.eventbridge]\npassword_file = "/etc/hostname"\n',
            {},
            "triggers.eventbridge.username",
        ),
        (
            '[triggers.eventbridge]\nusername = "eb"\npassword_file = "/etc/hostname"\n',
            {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": "k"},
            "triggers.eventbridge.username",
        ),
        ('[triggers.eventbridge]\nusername = "a:b"\n', {}, "triggers.eventbridge.username"),
        (
            '[triggers.eventbridge]\napi_key_header = "x api"\n',
            {},
            "triggers.eventbridge.api_key_header",
        ),
        ("[triggers.eventbridge]\ndeadline = 5\n", {}, "triggers.eventbridge.deadline"),
        ("[triggers.github]\ndeadline = 10\n", {}, "triggers.github.deadline"),
        ("[triggers.github]\nmax_body_bytes = 30000000\n", {}, "triggers.github.max_body_bytes"),
        ('[triggers.github]\nsecret = "inline"\n', {}, "triggers.github.secret"),
        ('[triggers.eventbridge]\napi_key = "inline"\n', {}, "triggers.eventbridge.api_key"),
    ],
)
def test_mistakes_name_the_key_or_variable(tmp_path, text, environ, key):
    assert refused(tmp_path, text, environ).key == key


def test_an_empty_secret_file_is_refused(tmp_path):
    path = secret(tmp_path, "github", "\n")
    error = refused(tmp_path, f'[triggers.github]\nsecret_file = "{path}"\n')
    assert (error.key, "empty" in error.reason) == ("triggers.github.secret_file", True)


def test_rules_need_their_endpoint(tmp_path):
    for source, endpoint in (
        ("eventbridge", "eventbridge"),
        ("dynamodb", "eventbridge"),
        ("github", "github"),
    ):
        error = refused(tmp_path, f'[events.r]\nsource = "{source}"\nhost = "h"\n')
        assert error.key == "events.r.source" and f"[triggers.{endpoint}]" in error.reason


def test_rules_of_the_new_sources_parse(tmp_path):
    path = secret(tmp_path, "github", "s")
    settings = load(
        tmp_path,
        f'[triggers.github]\nsecret_file = "{path}"\n\n'
        "[triggers.eventbridge]\n\n"
        '[events.orders]\nsource = "dynamodb"\ntable = "Orders"\nevent = ["INSERT"]\n'
        'host = "orders"\n\n'
        '[events.pushes]\nsource = "github"\nrepository = "acme/*"\nref = "refs/heads/main"\n'
        'host = "ci"\n',
        {"FUNKER_DISPATCH_EVENTBRIDGE_API_KEY": "k"},
    )
    assert {name: rule.source for name, rule in settings.rules.items()} == {
        "orders": "dynamodb",
        "pushes": "github",
    }
