"""`funker-dispatch models check`: interaction models against ask-cli's rules and the routes.

It reads the model files itself rather than through `skill.models`, because
its job is to explain why a file is wrong where the loader would just skip it.
Rules follow Amazon's published requirements for invocation names, intent and
slot names and sample utterances, plus what this skill needs: every custom
intent must reach a function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch.registry import NoRoute, Router, is_custom_intent
from skill.models import DEFAULT_MODELS

# What certification requires every custom skill to declare (docs/alexa.md).
REQUIRED_BUILT_INS = (
    "AMAZON.HelpIntent",
    "AMAZON.StopIntent",
    "AMAZON.CancelIntent",
    "AMAZON.FallbackIntent",
    "AMAZON.NavigateHomeIntent",
)

# Invocation names: lowercase letters, spaces, possessive apostrophes, and
# periods of spelled-out abbreviations ("a. b. c."); numbers spelled out.
_INVOCATION = re.compile(r"^(?:[a-z]+(?:'s)?|(?:[a-z]\.)+)(?: (?:[a-z]+(?:'s)?|(?:[a-z]\.)+))*$")
_LAUNCH_WORDS = {"launch", "ask", "tell", "load", "begin", "enable"}
_WAKE_WORDS = {"alexa", "amazon", "echo", "computer", "skill", "app"}
# A two-word name may not be padded out with an article or a preposition.
_FILLERS = {"the", "a", "an", "for", "to", "of", "in", "on", "with", "by"}
INVOCATION_MIN, INVOCATION_MAX = 2, 50

_NAME = re.compile(r"^[A-Za-z][A-Za-z_]*$")
_BUILT_IN_NAME = re.compile(r"^AMAZON\.[A-Za-z][A-Za-z_]*$")
# Sample text: letters (any script), apostrophes, periods, spaces and {slot} references.
_SAMPLE_TEXT = re.compile(r"^[^\W\d_]+(?:['’.][^\W\d_]*)*$")
_SLOT_REF = re.compile(r"\{([^{}]*)\}")
SAMPLE_MAX = 200


@dataclass(frozen=True)
class Finding:
    """One problem: where it is (file, intent, sample) and what is wrong."""

    level: str  # "error" | "warning"
    file: str
    message: str
    intent: str | None = None
    sample: str | None = None

    def where(self) -> str:
        parts = [self.file]
        if self.intent:
            parts.append(self.intent)
        if self.sample is not None:
            parts.append(f'"{self.sample}"')
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.level}: {self.where()}: {self.message}"


@dataclass
class ModelSummary:
    """What a clean model holds, for the table."""

    locale: str
    file: str
    invocation_name: str
    intents: dict[str, int] = field(default_factory=dict)  # intent -> number of samples


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    models: list[ModelSummary] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)  # custom intent -> "host:port (source)"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


#: How a route is shown: (intent, host, port, source) -> text.
Describe = Callable[[str, str, int, str], str]


def check_models(
    directory: Path | None, router: Router, *, describe: Describe | None = None
) -> Report:
    """Check every `interactionModels/custom/<locale>.json` under the skill package.

    `describe` names each route in the report (default host:port and its source).
    """
    directory = DEFAULT_MODELS if directory is None else directory
    report = Report()
    folder = directory / "interactionModels" / "custom"
    paths = sorted(folder.glob("*.json"))
    if not paths:
        report.findings.append(Finding("error", str(folder), "no interaction models (*.json)"))
        return report
    for path in paths:
        _check_file(path, router, report, describe or _host_port)
    modelled = {name for model in report.models for name in model.intents}
    for name in router.routes:
        if is_custom_intent(name) and name not in modelled:
            report.findings.append(
                Finding("warning", "configuration", "routed, but no model declares it", name)
            )
    return report


def _check_file(path: Path, router: Router, report: Report, describe: Describe) -> None:
    file = _display(path)
    findings = report.findings

    def error(message: str, intent: str | None = None, sample: str | None = None) -> None:
        findings.append(Finding("error", file, message, intent, sample))

    def warning(message: str, intent: str | None = None, sample: str | None = None) -> None:
        findings.append(Finding("warning", file, message, intent, sample))

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        error(f"cannot read: {exc}")
        return
    except ValueError as exc:
        error(f"not valid JSON: {exc}")
        return
    language = _get(document, "interactionModel", "languageModel")
    if not isinstance(language, dict):
        error("expected an object at interactionModel.languageModel (ask-cli format)")
        return

    invocation = language.get("invocationName")
    if not isinstance(invocation, str):
        error("interactionModel.languageModel.invocationName must be a string")
        invocation = ""
    else:
        for problem, is_error in invocation_name_problems(invocation):
            (error if is_error else warning)(f"invocation name {invocation!r}: {problem}")

    types = _check_types(language.get("types", []), error, warning)
    intents = language.get("intents")
    if not isinstance(intents, list) or not intents:
        error("interactionModel.languageModel.intents must be a non-empty list")
        return

    summary = ModelSummary(path.stem, file, invocation)
    owner: dict[str, str] = {}  # normalised sample -> intent that declared it first
    for index, intent in enumerate(intents):
        if not isinstance(intent, dict) or not isinstance(intent.get("name"), str):
            error(f"intents[{index}] must be an object with a string name")
            continue
        name = intent["name"]
        if name in summary.intents:
            error("intent declared twice", name)
            continue
        if name.startswith("AMAZON."):
            if not _BUILT_IN_NAME.match(name):
                error("not a valid built-in intent name", name)
        elif not _NAME.match(name):
            error("intent names use letters and underscores only, starting with a letter", name)
        slots = _check_slots(name, intent.get("slots", []), types, error)
        samples = intent.get("samples", [])
        if not isinstance(samples, list):
            error("samples must be a list of strings", name)
            samples = []
        used: set[str] = set()
        for sample in samples:
            if not isinstance(sample, str):
                error(f"sample {sample!r} is not a string", name)
                continue
            used |= _check_sample(name, sample, slots, error)
            key = " ".join(sample.lower().split())
            first = owner.setdefault(key, name)
            if first != name:
                error(f"the same sample is under {first} too", name, sample)
        for slot in sorted(set(slots) - used):
            if not name.startswith("AMAZON."):
                warning(f"slot {{{slot}}} appears in no sample, so it is never filled", name)
        if not name.startswith("AMAZON.") and not samples:
            error("a custom intent needs at least one sample", name)
        summary.intents[name] = len(samples)

    for required in REQUIRED_BUILT_INS:
        if required not in summary.intents:
            error(f"required built-in intent {required} is missing")
    _check_routes(summary, router, report, error, describe)
    report.models.append(summary)


def invocation_name_problems(name: str) -> list[tuple[str, bool]]:
    """(problem, is_error) for an invocation name, per Amazon's invocation name requirements."""
    problems: list[tuple[str, bool]] = []
    if not INVOCATION_MIN <= len(name) <= INVOCATION_MAX:
        problems.append((f"must be {INVOCATION_MIN} to {INVOCATION_MAX} characters long", True))
    if not _INVOCATION.match(name):
        problems.append(
            (
                "only lowercase letters, single spaces, possessive apostrophes and periods "
                'of abbreviations ("a. b. c.") are allowed; spell out numbers',
                True,
            )
        )
    words = name.replace(".", " ").split()
    lowered = [w.lower() for w in words]
    for word in lowered:
        if word in _LAUNCH_WORDS:
            problems.append((f"contains the launch word {word!r}", True))
        if word in _WAKE_WORDS:
            problems.append((f"contains the wake word or reserved word {word!r}", True))
    if len(words) == 1:
        # Allowed only for a brand the developer owns: Amazon decides, we warn.
        problems.append(("one-word names are allowed only for your own brand", False))
    if len(words) == 2 and any(w in _FILLERS for w in lowered):
        problems.append(("a two-word name may not contain an article or preposition", True))
    return problems


def _check_types(types: Any, error: Any, warning: Any) -> dict[str, set[str]]:
    """Custom slot types by name, with their spoken values (values and synonyms)."""
    declared: dict[str, set[str]] = {}
    if not isinstance(types, list):
        error("interactionModel.languageModel.types must be a list")
        return declared
    for index, slot_type in enumerate(types):
        if not isinstance(slot_type, dict) or not isinstance(slot_type.get("name"), str):
            error(f"types[{index}] must be an object with a string name")
            continue
        type_name = slot_type["name"]
        if not _NAME.match(type_name):
            error(f"slot type {type_name!r}: letters and underscores only, starting with a letter")
        values = slot_type.get("values")
        if not isinstance(values, list) or not values:
            error(f"slot type {type_name} has no values")
            declared[type_name] = set()
            continue
        spoken: dict[str, str] = {}
        ids: set[str] = set()
        for value in values:
            text = _get(value, "name", "value")
            if not isinstance(text, str) or not text.strip():
                error(f"slot type {type_name}: every value needs name.value (a string)")
                continue
            synonyms = _get(value, "name", "synonyms") or []
            if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
                error(f"slot type {type_name}: value {text!r}: synonyms must be strings")
                synonyms = []
            value_id = value.get("id") if isinstance(value, dict) else None
            if value_id is not None:
                if value_id in ids:
                    error(f"slot type {type_name}: id {value_id!r} is used twice")
                ids.add(value_id)
            for word in [text, *synonyms]:
                key = " ".join(word.lower().split())
                if key in spoken and spoken[key] != text:
                    error(
                        f"slot type {type_name}: {word!r} resolves to both "
                        f"{spoken[key]!r} and {text!r}"
                    )
                spoken.setdefault(key, text)
        declared[type_name] = set(spoken)
    return declared


def _check_slots(
    intent: str, slots: Any, types: Mapping[str, set[str]], error: Any
) -> dict[str, str]:
    declared: dict[str, str] = {}
    if not isinstance(slots, list):
        error("slots must be a list", intent)
        return declared
    for slot in slots:
        name = slot.get("name") if isinstance(slot, dict) else None
        slot_type = slot.get("type") if isinstance(slot, dict) else None
        if not isinstance(name, str) or not isinstance(slot_type, str):
            error("every slot needs a string name and type", intent)
            continue
        if not _NAME.match(name):
            error(f"slot {name!r}: letters and underscores only, starting with a letter", intent)
        if name in declared:
            error(f"slot {name} declared twice", intent)
        if not slot_type.startswith("AMAZON.") and slot_type not in types:
            error(f"slot {name}: type {slot_type} is neither declared nor AMAZON.*", intent)
        declared[name] = slot_type
    return declared


def _check_sample(intent: str, sample: str, slots: Mapping[str, str], error: Any) -> set[str]:
    """Problems of one sample; returns the slots it references."""
    if not sample.strip():
        error("empty sample", intent, sample)
        return set()
    if len(sample) > SAMPLE_MAX:
        error(f"longer than {SAMPLE_MAX} characters", intent, sample)
    used = set()
    for ref in _SLOT_REF.findall(sample):
        used.add(ref)
        if ref not in slots:
            error(f"slot {{{ref}}} is not declared on the intent", intent, sample)
    text = _SLOT_REF.sub(" ", sample)
    if "{" in text or "}" in text:
        error("unbalanced { } around a slot name", intent, sample)
        return used
    for word in text.split():
        if any(c.isdigit() for c in word):
            error(f"{word!r}: spell numbers out as words", intent, sample)
        elif not _SAMPLE_TEXT.match(word):
            error(
                f"{word!r}: only letters, apostrophes and periods of abbreviations are allowed",
                intent,
                sample,
            )
    return used


def _check_routes(
    summary: ModelSummary, router: Router, report: Report, error: Any, describe: Describe
) -> None:
    for intent in summary.intents:
        if intent.startswith("AMAZON."):
            if router.has_route(intent):
                route = router.resolve(intent)
                report.routes[intent] = describe(intent, route.host, route.port, route.source)
            continue
        try:
            route = router.resolve(intent)
        except NoRoute:
            error(
                "no route: add [intents." + intent + "] to the configuration "
                '(or use naming = "intent" and a service of that name)',
                intent,
            )
            continue
        report.routes[intent] = describe(intent, route.host, route.port, route.source)


def _host_port(intent: str, host: str, port: int, source: str) -> str:
    return f"{host}:{port} ({source})"


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_report(report: Report) -> int:
    """Print findings (or the summary table when there are no errors); the exit code."""
    import sys

    from rich.markup import escape
    from rich.table import Table

    from funker_dispatch.devtools.terminal import console

    err = console(stderr=True, highlight=False, soft_wrap=True)  # one finding a line, for grep
    for finding in report.findings:
        style = "red" if finding.level == "error" else "yellow"
        err.print(
            f"[{style}]{finding.level}[/]: {escape(finding.where())}: {escape(finding.message)}"
        )
    if report.errors:
        err.print(
            f"[red]{len(report.errors)} error(s)[/], {len(report.warnings)} warning(s)",
        )
        return 1
    locales = [m.locale for m in report.models]
    table = Table(
        "intent",
        *(f"{locale} samples" for locale in locales),
        "route",
        title="interaction models OK",
    )
    names: list[str] = []
    for model in report.models:
        names.extend(n for n in model.intents if n not in names)
    for name in names:
        counts = [str(m.intents[name]) if name in m.intents else "-" for m in report.models]
        route = report.routes.get(name, "built-in" if name.startswith("AMAZON.") else "-")
        table.add_row(name, *counts, route)
    out = console(file=sys.stdout)
    out.print(table)
    invocations = ", ".join(f"{m.locale}: {m.invocation_name!r}" for m in report.models)
    out.print(f"invocation names: {invocations}")
    return 0
