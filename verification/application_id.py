"""The skill-id allowlist, as an ASK SDK verifier (the SDK's own check answers 500)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ask_sdk_webservice_support.verifier import AbstractVerifier

from verification.errors import ApplicationIdInvalid


class ApplicationIdVerifier(AbstractVerifier):
    """Accept only requests whose application id is in `application_ids`.

    The id is read from `context.System.application` and, when present,
    `session.application`; every id present must be allowed and at least one
    must be present. An empty allowlist accepts any id (the server warns).
    """

    def __init__(self, application_ids: Iterable[str]) -> None:
        self.application_ids = frozenset(application_ids)

    def verify(
        self, headers: Any, serialized_request_env: str, deserialized_request_env: Any
    ) -> None:
        if not self.application_ids:
            return
        found = _application_ids(deserialized_request_env)
        if not found:
            raise ApplicationIdInvalid("request carries no application id")
        for application_id in found:
            if application_id not in self.application_ids:
                raise ApplicationIdInvalid("application id not allowed")


def _application_ids(envelope: Any) -> list[str]:
    ids = []
    context = getattr(envelope, "context", None)
    system = getattr(context, "system", None)
    application = getattr(system, "application", None)
    if application is not None and getattr(application, "application_id", None) is not None:
        ids.append(application.application_id)
    session = getattr(envelope, "session", None)
    application = getattr(session, "application", None)
    if application is not None and getattr(application, "application_id", None) is not None:
        ids.append(application.application_id)
    return ids
