"""`[console] enabled` (docs/console.md): off unless asked, on in the default, on loopback."""

from pathlib import Path

import pytest

from skill.settings import ConfigError, load_settings


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dispatch.toml"
    path.write_text(text)
    return path


def test_a_config_without_a_console_section_serves_no_console(tmp_path):
    assert load_settings(config(tmp_path, ""), {}).console.enabled is False


def test_the_embedded_default_serves_the_console():
    assert load_settings(None, {}).console.enabled is True


def test_the_console_can_be_turned_on_in_a_config(tmp_path):
    settings = load_settings(config(tmp_path, "[console]\nenabled = true\n"), {})
    assert settings.console.enabled is True


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "dispatcher.internal"])
def test_a_console_on_a_non_loopback_admin_host_is_a_config_error_naming_the_key(tmp_path, host):
    path = config(tmp_path, f'[server]\nadmin_host = "{host}"\n\n[console]\nenabled = true\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path, {})
    assert error.value.key == "console.enabled"
    assert "admin_host" in error.value.reason and "loopback" in error.value.reason


def test_moving_the_embedded_admin_listener_off_loopback_is_refused_while_the_console_is_on():
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"FUNKER_DISPATCH_SERVER_ADMIN_HOST": "0.0.0.0"})
    assert error.value.key == "console.enabled"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_console_on_a_loopback_admin_host_is_accepted(tmp_path, host):
    path = config(tmp_path, f'[server]\nadmin_host = "{host}"\n\n[console]\nenabled = true\n')
    assert load_settings(path, {}).console.enabled is True


def test_a_console_off_on_a_public_admin_host_is_fine(tmp_path):
    path = config(tmp_path, '[server]\nadmin_host = "0.0.0.0"\n\n[console]\nenabled = false\n')
    assert load_settings(path, {}).server.admin_host == "0.0.0.0"


def test_unknown_console_keys_fail_at_start(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(config(tmp_path, "[console]\nport = 1\n"), {})
    assert error.value.key == "console.port"
