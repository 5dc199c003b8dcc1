"""The "your own function" recipe of Get started runs as written and makes the function speak.

Every step is taken from docs/get-started.md's own code blocks: the function file, the
command that starts it, the intent added to the copied model, the one-liner that prints
the development CA's files, the TOML, and the commands. Only what a shared test machine
needs changes: free ports instead of 9101 and 3000, and the CA's home in a temporary
folder. The README's short version must be lines of the same recipe.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.helpers import accepts, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "get-started.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECIPE = PAGE[PAGE.index("## Your own function") : PAGE.index("## Next")]


def blocks(text: str) -> list[tuple[str, str]]:
    """Each fenced code block as (language, dedented body)."""
    found = re.findall(r"^( *)```(\w*)\n(.*?)^\1```", text, flags=re.M | re.S)
    return [
        (language, "".join(line[len(indent) :] for line in body.splitlines(keepends=True)))
        for indent, language, body in found
    ]


def block(language: str, containing: str) -> str:
    matches = [body for lang, body in blocks(RECIPE) if lang == language and containing in body]
    assert len(matches) == 1, (language, containing)
    return matches[0]


def commands(containing: str) -> list[str]:
    return [line for line in block("sh", containing).splitlines() if line.strip()]


def test_the_readme_recipe_is_lines_of_the_get_started_recipe():
    section = README[README.index("## Your own function") :]
    section = section[: section.index("\n## ", 1)]
    recipe_lines = {line.strip() for _, body in blocks(RECIPE) for line in body.splitlines()}
    shown = [line.strip() for _, body in blocks(section) for line in body.splitlines()]
    assert shown
    assert [line for line in shown if line and line not in recipe_lines] == []


def test_your_own_function_speaks_by_the_recipe(tmp_path: Path):
    function_port, port, admin_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "FUNKER_DISPATCH_HOME": str(tmp_path / "home"),
        "FUNKER_DISPATCH_SERVER_PORT": str(port),
        "FUNKER_DISPATCH_SERVER_ADMIN_PORT": str(admin_port),
    }
    env.pop("FUNKER_DISPATCH_CONFIG", None)
    command = [str(Path(sys.executable).parent / "funker-dispatch")]
    if not Path(command[0]).exists():
        command = [sys.executable, "-m", "funker_dispatch"]

    def argv(line: str) -> list[str]:
        words = shlex.split(line.rstrip(" &"))
        if words[0] == ".venv/bin/python":
            return [sys.executable, *words[1:]]
        assert words[0] == "funker-dispatch", line
        return [*command, *words[1:]]

    # The function, where the page puts it, started by the page's command.
    source = block("python", "# functions/weather/function.py")
    target = tmp_path / source.splitlines()[0].removeprefix("# ")
    target.parent.mkdir(parents=True)
    target.write_text(source)
    [start_function] = commands("functions/weather/function.py --port 9101")
    children = [
        subprocess.Popen(
            argv(start_function.replace("9101", str(function_port))), cwd=tmp_path, env=env
        )
    ]
    try:
        # The copied model, with the page's intent in every locale.
        [copy] = commands("cp -r interaction_models")
        assert shlex.split(copy)[:3] == ["cp", "-r", "interaction_models"]
        models = tmp_path / shlex.split(copy)[3]
        shutil.copytree(ROOT / "interaction_models", models)
        intent = json.loads(block("json", '"name": "WeatherIntent"'))
        locales = sorted((models / "interactionModels" / "custom").glob("*.json"))
        assert [path.name for path in locales] == ["en-GB.json", "en-US.json"]
        for path in locales:
            document = json.loads(path.read_text())
            document["interactionModel"]["languageModel"]["intents"].append(intent)
            path.write_text(json.dumps(document, indent=2))

        # The CA's three names, printed by the page's one-liner, filled into its TOML.
        [print_ca] = commands("DevCA.load_or_create()")
        printed = subprocess.run(
            argv(print_ca), cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        chain_url, chain_path, root = printed
        config = (
            block("toml", "# my-skill.toml")
            .replace("<the root.pem printed above>", root)
            .replace("<the chain URL printed above>", chain_url)
            .replace("<the chain.pem printed above>", chain_path)
            .replace("9101", str(function_port))
        )
        assert "<" not in config
        (tmp_path / "my-skill.toml").write_text(config)

        models_check, check, serve, simulate = commands("funker-dispatch serve")
        for line in (models_check, check):
            done = subprocess.run(argv(line), cwd=tmp_path, env=env, capture_output=True)
            assert done.returncode == 0, (line, done.stdout, done.stderr)

        server = subprocess.Popen(argv(serve), cwd=tmp_path, env=env)
        children.append(server)

        def ready() -> bool:
            assert server.poll() is None, "serve exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(ready, 60, "the server of the recipe to be ready")
        wait_until(lambda: accepts(function_port), 60, "the recipe's function to listen")
        done = subprocess.run(
            [*argv(simulate), "--url", f"http://127.0.0.1:{port}/"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "It is sunny in the sandbox." in done.stdout
        assert "It is sunny in the sandbox." in RECIPE
    finally:
        for child in children:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
