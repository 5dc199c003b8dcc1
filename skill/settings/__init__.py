"""Settings: the configuration file, the environment and flags, read and checked at start.

`load_settings(path=None, environ=None)` is the one entry point; the modules
below are what it reads, one concern each:

- `values`: how a value is read (parsers and their bounds), `ConfigError`;
- `sections`: `[server]`, `[skill]`, `[dispatch]`, `[verification]`, `[console]`
  and the `Settings` that holds them, every key with its default and doc;
- `triggers`: `[triggers.sns|eventbridge|github]` and their credentials;
- `secrets`: secret files (refused when others can write them);
- `embedded`: the embedded default `make run` serves;
- `load`: the file, then the environment, then flags, and the checks at start.
"""

from skill.settings.embedded import (
    DEVELOPMENT_EVENTBRIDGE_API_KEY,
    DEVELOPMENT_GITHUB_SECRET,
    DEVELOPMENT_SKILL_ID,
    DEVELOPMENT_TOPIC,
    SIMULATOR_API_ORIGIN,
    embedded_default,
)
from skill.settings.load import ENV_PREFIX, RESERVED_ENV, load_settings, settings_from_mapping
from skill.settings.sections import (
    EMBEDDED_SOURCE,
    ConsoleSettings,
    DispatchSettings,
    LocalFunction,
    ServerSettings,
    Settings,
    SkillSettings,
    VerificationSettings,
    admin_origin,
    public_origin,
)
from skill.settings.triggers import (
    EVENTBRIDGE_API_KEY_ENV,
    GITHUB_SECRET_ENV,
    EventBridgeTriggerSettings,
    GitHubTriggerSettings,
    SnsTriggerSettings,
    TriggerSettings,
)
from skill.settings.values import ConfigError

__all__ = [
    "DEVELOPMENT_EVENTBRIDGE_API_KEY",
    "DEVELOPMENT_GITHUB_SECRET",
    "DEVELOPMENT_SKILL_ID",
    "DEVELOPMENT_TOPIC",
    "EMBEDDED_SOURCE",
    "ENV_PREFIX",
    "EVENTBRIDGE_API_KEY_ENV",
    "GITHUB_SECRET_ENV",
    "RESERVED_ENV",
    "SIMULATOR_API_ORIGIN",
    "ConfigError",
    "ConsoleSettings",
    "DispatchSettings",
    "EventBridgeTriggerSettings",
    "GitHubTriggerSettings",
    "LocalFunction",
    "ServerSettings",
    "Settings",
    "SkillSettings",
    "SnsTriggerSettings",
    "TriggerSettings",
    "VerificationSettings",
    "admin_origin",
    "embedded_default",
    "load_settings",
    "public_origin",
    "settings_from_mapping",
]
