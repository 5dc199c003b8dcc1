"""Secret files: refused when others can write them, read once, one trailing newline stripped."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from skill.settings.values import ConfigError

log = logging.getLogger("funker_dispatch")


def check_secret_file(path: str, key: str, source: str) -> None:
    """Refuse a secret file that others can write; warn when others can read it.

    As ssh refuses a private key others can change: whoever can write the
    webhook secret or the admin token can forge what it authenticates. A
    Docker secret is 0444 unless the stack says otherwise (it says 0400).
    """
    try:
        mode = os.stat(path).st_mode  # follows a symlink (Kubernetes mounts secrets so)
    except OSError:
        return  # reading it fails next, with the reason
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            source,
            key,
            f"{path} is writable by its group or others (mode {stat.S_IMODE(mode):04o}): "
            f"anyone who can write it controls the secret; chmod go-w {path}",
        )
    if mode & stat.S_IROTH:
        log.warning(
            "%s: %s: %s is readable by others (mode %04o); chmod o-r, or mode 0400 in the stack",
            source,
            key,
            path,
            stat.S_IMODE(mode),
        )


def read_secret(
    environ: Mapping[str, str], variable: str | None, path: str | None, key: str, source: str
) -> str | None:
    """A secret from the environment variable, else the file, one trailing newline stripped."""
    if variable is not None and variable in environ:
        value = environ[variable].removesuffix("\n").removesuffix("\r")
        if not value.strip():
            raise ConfigError("environment", variable, "is set but empty (unset it, or give one)")
        return value
    if path is None:
        return None
    check_secret_file(path, key, source)
    try:
        value = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(source, key, f"cannot read {path}: {reason}") from None
    value = value.removesuffix("\n").removesuffix("\r")  # one trailing newline, as echo writes
    if not value.strip():
        raise ConfigError(source, key, f"{path} is empty")
    return value
