"""Secret files others could replace are refused, as ssh refuses such a key (docs/robustness.md).

A secret file writable by its group or by everyone fails the start, naming the
file and the key: any local user could swap the HMAC secret or the admin token
for one of their own. Readable by others is a warning (Docker secrets default
to 0444; the stack sets 0400 and the image's uid).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from skill.settings import ConfigError, load_settings
from tests import pki

BASE = '[skill]\napplication_ids = ["amzn1.ask.skill.test"]\n\n'


def tls_pair(tmp_path: Path) -> tuple[Path, Path]:
    certificate = pki.server_certificate(pki.tls_root())
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(certificate.pem)
    key.write_bytes(certificate.key_pem)
    return cert, key


def config_for(key: str, path: Path, tmp_path: Path) -> str:
    """A config whose `key` names `path` (and whatever else that key needs)."""
    if key == "triggers.github.secret_file":
        return f'[triggers.github]\nsecret_file = "{path}"\n'
    if key == "triggers.eventbridge.api_key_file":
        return f'[triggers.eventbridge]\napi_key_file = "{path}"\n'
    if key == "triggers.eventbridge.password_file":
        return f'[triggers.eventbridge]\nusername = "eb"\npassword_file = "{path}"\n'
    if key == "server.admin_token_file":
        return f'[server]\nadmin_token_file = "{path}"\n'
    cert, _ = tls_pair(tmp_path)
    return f'[server]\ncertfile = "{cert}"\nkeyfile = "{path}"\n'


SECRET_KEYS = [
    "triggers.github.secret_file",
    "triggers.eventbridge.api_key_file",
    "triggers.eventbridge.password_file",
    "server.admin_token_file",
    "server.keyfile",
]


def secret_file(key: str, tmp_path: Path, mode: int) -> Path:
    if key == "server.keyfile":
        path = tls_pair(tmp_path)[1]
    else:
        path = tmp_path / "secret"
        path.write_text("s3cr3t\n")
    path.chmod(mode)
    return path


def load(tmp_path: Path, text: str):
    config = tmp_path / "dispatch.toml"
    config.write_text(BASE + text)
    return load_settings(config, environ={})


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602], ids=["0666", "0620", "0602"])
def test_a_secret_file_others_can_write_fails_the_start_naming_file_and_key(tmp_path, key, mode):
    path = secret_file(key, tmp_path, mode)
    with pytest.raises(ConfigError) as error:
        load(tmp_path, config_for(key, path, tmp_path))
    assert error.value.key == key
    assert str(path) in error.value.reason and "writable" in error.value.reason
    assert "s3cr3t" not in str(error.value)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_secret_file_others_can_read_starts_with_a_warning(tmp_path, key, caplog):
    path = secret_file(key, tmp_path, 0o644)
    with caplog.at_level(logging.WARNING, logger="funker_dispatch"):
        load(tmp_path, config_for(key, path, tmp_path))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and "readable by others" in w and key in w for w in warnings)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_secret_file_only_its_owner_can_read_starts_quietly(tmp_path, key, caplog):
    path = secret_file(key, tmp_path, 0o400)
    with caplog.at_level(logging.WARNING, logger="funker_dispatch"):
        load(tmp_path, config_for(key, path, tmp_path))
    assert not [r for r in caplog.records if str(path) in r.getMessage()]
