"""The console offers the interaction model the server loaded at start, not the files as
they are now: its menu, its matching and its routes agree with what the skill answers.

Run on the admin app in process; the model files are edited after it started.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from funker_dispatch.cli import admin_extensions
from skill.app import create_admin_app, create_app
from skill.models import DEFAULT_MODELS
from skill.settings import DEVELOPMENT_SKILL_ID, load_settings
from tests.test_console_guards import api_headers, page_token


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(tmp_path / "home"))
    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS, models)
    config = tmp_path / "dispatch.toml"
    config.write_text(
        f'[server]\nport = 3000\n\n[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n'
        f'interaction_models = "{models}"\n\n[console]\nenabled = true\n'
    )
    settings = load_settings(config, environ={})
    app = create_admin_app(create_app(settings), admin_extensions(settings))
    return app.test_client(), models


def edit_every_locale(models: Path) -> None:
    """What a developer does while the server runs: an intent added, HelloIntent dropped."""
    for path in (models / "interactionModels" / "custom").glob("*.json"):
        document = json.loads(path.read_text())
        language = document["interactionModel"]["languageModel"]
        language["intents"] = [i for i in language["intents"] if i["name"] != "HelloIntent"]
        language["intents"].append({"name": "AddedLaterIntent", "samples": ["added later"]})
        path.write_text(json.dumps(document))


def names(answer: Any, key: str) -> set[str]:
    assert answer.status_code == 200, answer.json
    return {row["name"] for row in answer.json[key]}


@pytest.mark.parametrize("locale", ["en-US", "en-GB"])
def test_the_menu_and_routes_are_the_models_loaded_at_start(started, locale):
    client, models = started
    headers = api_headers(page_token(client))
    edit_every_locale(models)  # before the console first reads a model

    offered = names(client.get(f"/console/api/model?locale={locale}", headers=headers), "intents")
    routed = names(client.get("/console/api/routes", headers=headers), "intents")

    assert "HelloIntent" in offered and "AddedLaterIntent" not in offered
    assert "HelloIntent" in routed and "AddedLaterIntent" not in routed
    assert "AMAZON.HelpIntent" in routed  # the built-ins are listed as answered here
