"""The code's layout as a rule: one concern a folder, arrows only downward, no import circle.

Every import of the first-party packages is read with `ast` (inside functions
too, since a lazy import is still a dependency; not under `if TYPE_CHECKING:`,
which is for the type checker only). From the top down:

    funker_dispatch.cli          the composition root (the console script)
    funker_dispatch.devtools     the developer's tools, the web console
    funker_dispatch.server       the server process: granian, the bridge
    skill                        the Alexa skill, its Flask apps, settings, observability
    triggers                     event triggers: parse, match, fan out
    dispatch, verification       the funker protocol and routing; request verification

A module may import from its own layer and any layer below, never above, and
dispatch and verification never import each other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("funker_dispatch", "skill", "triggers", "dispatch", "verification")
#: Lower numbers are lower; a module may import its own number and below.
LAYERS = {
    "dispatch": 0,
    "verification": 0,
    "triggers": 1,
    "skill": 2,
    "funker_dispatch": 3,  # the package's __init__: a docstring only
    "funker_dispatch.server": 3,
    "funker_dispatch.devtools": 4,
    "funker_dispatch.cli": 5,
    "funker_dispatch.__main__": 5,
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The first-party modules `name` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    first_party = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            first_party.add(target)
    return first_party


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    for candidate in [name, *reversed(_parents(name))]:
        if candidate in LAYERS:
            return LAYERS[candidate]
    raise AssertionError(f"{name} is in no layer: add its package to LAYERS")


def test_no_first_party_module_imports_one_above_it():
    upward = [
        f"{source} ({layer(source)}) -> {target} ({layer(target)})"
        for source, targets in graph().items()
        for target in targets
        if layer(target) > layer(source)
    ]
    assert upward == []


def test_dispatch_and_verification_never_import_each_other_or_the_web_framework():
    edges = graph()
    for low, other in (("dispatch", "verification"), ("verification", "dispatch")):
        for source, targets in edges.items():
            if source.split(".")[0] == low:
                assert not {t for t in targets if t.split(".")[0] == other}, source
    for path in [
        *ROOT.joinpath("dispatch").rglob("*.py"),
        *ROOT.joinpath("triggers").rglob("*.py"),
    ]:
        text = path.read_text(encoding="utf-8")
        assert "import flask" not in text and "from flask" not in text, path


def test_no_import_circle_among_first_party_modules():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the path being walked, 2 done
    path: list[str] = []
    circles: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)
    assert circles == [], "\n".join(" -> ".join(circle) for circle in circles)


def test_the_walk_sees_an_import_inside_a_function(tmp_path):
    # The rule would be empty if lazy imports were missed: the server imports the app so.
    assert "skill.app" in graph()["funker_dispatch.server.serve"]


def shipped_files() -> list[Path]:
    skip = {".venv", ".git", "build", "site", "__pycache__", ".pytest_cache", ".ruff_cache"}
    skip |= {path.name for path in ROOT.glob("*.egg-info")}
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and not skip.intersection(path.relative_to(ROOT).parts)
        and path.suffix in {".py", ".js", ".html", ".css", ".md", ".toml", ".yml", ".sh", ""}
    ]


def test_every_reference_into_the_docs_names_a_page_that_exists():
    """Comments point readers at docs/ pages, which ship with the code; a page moved or
    renamed must not leave them pointing at nothing. (The design notes the project was
    specified from are not part of it, so nothing may cite them.)"""
    cited = "DESIGN" + " §"
    broken, citing = [], []
    for path in shipped_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        if cited in text:
            citing.append(str(path.relative_to(ROOT)))
        if path.is_relative_to(ROOT / "tests" / "fixtures"):
            continue  # others' files, quoted: their docs/ are theirs
        for target in re.findall(r"\bdocs/[\w/.-]*\w", text):
            if not (ROOT / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert citing == []
    assert broken == []
