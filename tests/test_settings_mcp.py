"""`[mcp]` and `[mcp.oauth]` at start: off by default, secrets read once, bad ones named."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill.settings import ConfigError, load_settings

BASE = '[skill]\napplication_ids = ["amzn1.ask.skill.test"]\n\n'


def load(tmp_path: Path, text: str, home: Path | None = None):
    path = tmp_path / "dispatch.toml"
    path.write_text(BASE + text)
    environ = {"FUNKER_DISPATCH_HOME": str(home or tmp_path / "home")}
    return load_settings(path, environ)


def secret(tmp_path: Path, name: str, value: str, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(value)
    path.chmod(mode)
    return path


def test_mcp_is_off_unless_enabled(tmp_path):
    settings = load(tmp_path, "")
    assert settings.mcp.enabled is False
    assert load(tmp_path, '[mcp]\npath = "/tools"\n').mcp.enabled is False


def test_enabled_without_any_credential_refuses_everything(tmp_path):
    settings = load(tmp_path, "[mcp]\nenabled = true\n")
    assert settings.mcp.token is None and settings.mcp.refuses_everything


def test_the_token_file_is_read_at_start(tmp_path):
    token = secret(tmp_path, "token", "abc123\n")
    settings = load(tmp_path, f'[mcp]\nenabled = true\ntoken_file = "{token}"\n')
    assert settings.mcp.token == "abc123" and not settings.mcp.refuses_everything
    assert "abc123" not in repr(settings)


def test_a_token_file_others_can_write_fails_the_start_naming_it(tmp_path):
    token = secret(tmp_path, "token", "abc123", 0o666)
    with pytest.raises(ConfigError) as failure:
        load(tmp_path, f'[mcp]\nenabled = true\ntoken_file = "{token}"\n')
    assert failure.value.key == "mcp.token_file" and str(token) in failure.value.reason


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[mcp]\nenabled = true\nsurprise = 1\n", "mcp.surprise"),
        ('[mcp]\nenabled = true\nlocale = "english"\n', "mcp.locale"),
        ('[mcp]\nenabled = true\npath = "/"\n', "mcp.path"),
        ('[mcp]\nenabled = true\nresource = "https://x.example/other"\n', "mcp.resource"),
        ('[mcp]\nenabled = true\nresource = "ftp://x.example/mcp"\n', "mcp.resource"),
        ("[mcp.oauth]\ntoken_lifetime = 5\n", "mcp.oauth.token_lifetime"),
        ('[mcp.oauth]\nclients = [{client_id = "a:b", secret_file = "s"}]\n', None),
        ('[mcp.oauth]\nclients = [{client_id = "a"}]\n', "mcp.oauth.clients[0].secret_file"),
    ],
)
def test_bad_mcp_settings_fail_at_start_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as failure:
        load(tmp_path, text)
    assert str(tmp_path / "dispatch.toml") in str(failure.value)
    if key is not None:
        assert failure.value.key == key
    else:
        assert failure.value.key.startswith("mcp.oauth.clients[0]")


def test_oauth_clients_secrets_and_a_signing_key_made_in_the_home(tmp_path):
    client = secret(tmp_path, "client", "s3cret")
    settings = load(
        tmp_path,
        "[mcp]\nenabled = true\n\n"
        f'[mcp.oauth]\nclients = [{{client_id = "alexa", secret_file = "{client}"}}]\n',
    )
    oauth = settings.mcp.oauth
    assert oauth is not None and oauth.clients[0].secret == "s3cret"
    made = tmp_path / "home" / "mcp-oauth-key.pem"
    assert made.exists() and made.stat().st_mode & 0o077 == 0  # its owner's only
    assert oauth.key == made.read_bytes()
    again = load(tmp_path, f'[mcp]\nenabled = true\n\n[mcp.oauth]\nkey_file = "{made}"\n')
    assert again.mcp.oauth.key == oauth.key


def test_a_key_file_that_is_not_an_ec_p256_key_is_refused(tmp_path):
    key = secret(tmp_path, "key.pem", "not a key")
    with pytest.raises(ConfigError) as failure:
        load(tmp_path, f'[mcp]\nenabled = true\n\n[mcp.oauth]\nkey_file = "{key}"\n')
    assert failure.value.key == "mcp.oauth.key_file"


def test_the_embedded_default_serves_mcp_with_a_kept_development_token(tmp_path):
    environ = {"FUNKER_DISPATCH_HOME": str(tmp_path)}
    first = load_settings(None, environ)
    assert first.mcp.enabled and first.mcp.token
    assert load_settings(None, environ).mcp.token == first.mcp.token  # the tools agree with it
    assert (tmp_path / "mcp-development-token").stat().st_mode & 0o077 == 0
