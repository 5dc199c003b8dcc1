"""The skill's own spoken replies (welcome, help, "One moment."...) in every shipped locale."""

from __future__ import annotations

# Keyed by language; lookup is exact locale, then language, then English.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "welcome": "Welcome to Funker Dispatch. {abilities} What would you like?",
        "abilities": "You can ask: {examples}.",
        "no_abilities": "No functions are configured yet.",
        "help": "I answer with small functions. {abilities} What would you like?",
        "reprompt": "What would you like?",
        "stop": "Goodbye!",
        "fallback": "Sorry, I can't help with that. {abilities}",
        "or": "or",
        "progressive": "One moment.",
    },
    "de": {
        "welcome": "Willkommen bei Funker Dispatch. {abilities} Was möchtest du wissen?",
        "abilities": "Du kannst fragen: {examples}.",
        "no_abilities": "Es sind noch keine Funktionen eingerichtet.",
        "help": "Ich antworte mit kleinen Funktionen. {abilities} Was möchtest du wissen?",
        "reprompt": "Was möchtest du wissen?",
        "stop": "Tschüss!",
        "fallback": "Damit kann ich leider nicht helfen. {abilities}",
        "or": "oder",
        "progressive": "Einen Moment.",
    },
    "fr": {
        "welcome": "Bienvenue dans Funker Dispatch. {abilities} Que voulez-vous savoir ?",
        "abilities": "Vous pouvez demander : {examples}.",
        "no_abilities": "Aucune fonction n'est encore configurée.",
        "help": "Je réponds avec de petites fonctions. {abilities} Que voulez-vous savoir ?",
        "reprompt": "Que voulez-vous savoir ?",
        "stop": "Au revoir !",
        "fallback": "Désolé, je ne peux pas vous aider avec cela. {abilities}",
        "or": "ou",
        "progressive": "Un instant.",
    },
    "es": {
        "welcome": "Bienvenido a Funker Dispatch. {abilities} ¿Qué quieres saber?",
        "abilities": "Puedes preguntar: {examples}.",
        "no_abilities": "Todavía no hay funciones configuradas.",
        "help": "Respondo con pequeñas funciones. {abilities} ¿Qué quieres saber?",
        "reprompt": "¿Qué quieres saber?",
        "stop": "¡Adiós!",
        "fallback": "Lo siento, no puedo ayudarte con eso. {abilities}",
        "or": "o",
        "progressive": "Un momento.",
    },
}


def message(locale: str | None, key: str, **values: str) -> str:
    """The text `key` in the request's locale (English fallback), formatted."""
    table = _table(locale)
    text = table[key]
    if "{abilities}" in text and "abilities" not in values:
        values["abilities"] = abilities(locale, ())
    return text.format(**values)


def abilities(locale: str | None, examples: tuple[str, ...] | list[str]) -> str:
    """A sentence listing example requests ("You can ask: a, b or c.")."""
    table = _table(locale)
    examples = [e for e in examples if e]
    if not examples:
        return table["no_abilities"]
    joined = (
        examples[0]
        if len(examples) == 1
        else (", ".join(examples[:-1]) + f" {table['or']} " + examples[-1])
    )
    return table["abilities"].format(examples=joined)


def _table(locale: str | None) -> dict[str, str]:
    if locale:
        exact = MESSAGES.get(locale)
        if exact is not None:
            return exact
        language = MESSAGES.get(locale.split("-")[0].lower())
        if language is not None:
            return language
    return MESSAGES["en"]
