"""The command line: --version, check and intents, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from funker_dispatch.cli import package_version


def run(*args: str, config_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    if config_env is not None:
        env["FUNKER_DISPATCH_CONFIG"] = config_env
    return subprocess.run(
        [sys.executable, "-m", "funker_dispatch", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_version_prints_the_package_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"funker-dispatch {package_version()}"


def test_check_accepts_a_good_config_and_prints_the_routes(tmp_path: Path):
    config = tmp_path / "dispatch.toml"
    config.write_text('[intents.SpaceCountIntent]\nhost = "spacecount"\n')
    result = run("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert "SpaceCountIntent" in result.stdout and "spacecount" in result.stdout


def test_check_names_file_key_and_reason_for_a_bad_config(tmp_path: Path):
    config = tmp_path / "dispatch.toml"
    config.write_text("[dispatch]\ndeadline = 'soon'\n")
    result = run("check", "--config", str(config))
    assert result.returncode != 0
    assert str(config) in result.stderr
    assert "dispatch.deadline" in result.stderr
    assert "number" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reads_the_config_from_the_environment(tmp_path: Path):
    config = tmp_path / "dispatch.toml"
    config.write_text("[server]\nworkers = 0\n")
    result = run("check", config_env=str(config))
    assert result.returncode != 0
    assert "server.workers" in result.stderr


def test_check_refuses_an_unreadable_trusted_root(tmp_path: Path):
    root = tmp_path / "root.pem"
    root.write_text("not a certificate")
    config = tmp_path / "dispatch.toml"
    config.write_text(f'[verification]\ntrusted_roots = ["{root}"]\n')
    result = run("check", "--config", str(config))
    assert result.returncode != 0
    assert "verification.trusted_roots" in result.stderr
    assert "Traceback" not in result.stderr


def test_intents_json_lists_configured_and_naming_routes(tmp_path: Path):
    config = tmp_path / "dispatch.toml"
    config.write_text('[intents.SpaceCountIntent]\nhost = "spacecount"\n')
    result = run("intents", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["intents"]}
    assert rows["SpaceCountIntent"]["source"] == "config"
    # The shipped model's other custom intents are reachable by the naming convention.
    assert rows["HelloIntent"] == {
        "name": "HelloIntent",
        "host": "HelloIntent",
        "port": 9999,
        "source": "naming",
    }


def test_intents_probe_resolves_each_host_without_connecting(tmp_path: Path):
    config = tmp_path / "dispatch.toml"
    config.write_text(
        '[dispatch]\nnaming = "none"\n\n'
        '[intents.SpaceCountIntent]\nhost = "127.0.0.1"\nport = 9\n\n'
        '[intents.GoneIntent]\nhost = "no-such-service.invalid"\n'
    )
    result = run("intents", "--config", str(config), "--json", "--probe")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["intents"]}
    assert rows["SpaceCountIntent"]["resolves"] is True
    assert rows["SpaceCountIntent"]["addresses"] == 1
    assert "connects" not in rows["SpaceCountIntent"]
    assert rows["GoneIntent"]["resolves"] is False
    assert rows["GoneIntent"]["error"]


def _every_parser(parser):
    """A parser and every subcommand's, depth first."""
    import argparse

    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


def test_no_help_text_cites_a_document_users_do_not_have():
    # "docs/events/index.md" pointed at the project's internal contract, which is not shipped.
    from funker_dispatch.cli import build_parser

    for parser in _every_parser(build_parser()):
        text = parser.format_help()
        assert "DESIGN" not in text and "§" not in text, parser.prog


def test_tables_piped_to_a_file_or_grep_are_not_cut_to_80_columns(tmp_path: Path):
    # Rich assumes 80 columns when stdout is no terminal: a long host lost its end.
    host = "a-function-service-with-a-long-name." + "stack-" * 8 + "internal"
    config = tmp_path / "dispatch.toml"
    config.write_text(f'[intents.SpaceCountIntent]\nhost = "{host}"\n')
    env_columns = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", "funker_dispatch", "intents", "--probe", "--config", str(config)],
        capture_output=True,
        text=True,
        env={k: v for k, v in env_columns.items() if not k.startswith("FUNKER_DISPATCH_")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert host in result.stdout and "…" not in result.stdout
