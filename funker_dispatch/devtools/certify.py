"""`funker-dispatch certify URL`: the certification pre-flight against any running endpoint.

It sends what Amazon's functional test sends to a self-hosted endpoint — bad
signature headers, each of Amazon's invalid certificate URL examples, a
tampered body, a stale timestamp, a wrong skill id, malformed JSON — and
expects HTTP 400 for each; then valid signed requests, expecting valid
responses within Alexa's 8 seconds.

A 400 only proves the endpoint refused the request, not why. Some faults can
only be isolated when every other part of the request is valid, which needs an
endpoint that trusts the development CA's signature: against any other
endpoint those checks are reported "not isolated", never "pass".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from funker_dispatch.devtools.simulator import (
    SessionState,
    encode,
    envelope,
    intent_request,
    launch_request,
    session_ended_request,
)
from skill import client
from skill.client import Answer, EndpointError
from skill.settings import DEVELOPMENT_SKILL_ID

ALEXA_TIMEOUT = 8.0  # Alexa gives up on an endpoint after 8 s
MAX_RESPONSE_BYTES = 24 * 1024
STALE_BY = timedelta(seconds=151)  # one second past the 150 s Alexa allows
WRONG_SKILL_ID = "amzn1.ask.skill.ffffffff-ffff-4fff-bfff-ffffffffffff"
OTHER_WRONG_SKILL_ID = "amzn1.ask.skill.eeeeeeee-eeee-4eee-beee-eeeeeeeeeeee"

# Amazon's examples of certificate URLs an endpoint must refuse ("Verifying
# that the Request was Sent by Alexa").
AMAZON_INVALID_CERT_URLS: tuple[tuple[str, str], ...] = (
    ("http://s3.amazonaws.com/echo.api/echo-api-cert.pem", "protocol http"),
    ("https://notamazon.com/echo.api/echo-api-cert.pem", "host notamazon.com"),
    ("https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem", "path case EcHo.aPi"),
    ("https://s3.amazonaws.com/invalid.path/echo-api-cert.pem", "path invalid.path"),
    ("https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem", "port 563"),
)

PASS, FAIL, NOT_ISOLATED, NOT_RUN = "pass", "fail", "not isolated", "not run"

Signer = Callable[[bytes], Mapping[str, str]]
Post = Callable[[str, bytes, Mapping[str, str]], Answer]

PROBE = "the first signed LaunchRequest"  # does the endpoint trust the development CA?


@dataclass(frozen=True)
class Result:
    check: str
    expected: str
    verdict: str
    status: int | None = None
    detail: str = ""


class CertifyStopped(Exception):
    """A check got no HTTP answer at all, so the run stopped there; the results so far."""

    def __init__(self, check: str, error: EndpointError, trusts: bool, results: list[Result]):
        super().__init__(check, error)
        self.check = check
        self.error = error
        self.trusts = trusts
        self.results = results

    def __str__(self) -> str:
        return f'{self.error} (at "{self.check}")'


@dataclass(frozen=True)
class Negative:
    """A request the endpoint must refuse with 400."""

    name: str
    body: bytes
    headers: Mapping[str, str]
    needs_trust: bool  # only a trusted signature isolates this fault


class Certifier:
    """Runs the pre-flight against one endpoint."""

    def __init__(
        self,
        url: str,
        *,
        sign: Signer,
        skill_id: str = DEVELOPMENT_SKILL_ID,
        locale: str = "en-US",
        timeout: float = client.DEFAULT_TIMEOUT,
        post: Post | None = None,
    ) -> None:
        self.url = url
        self.sign = sign
        self.skill_id = skill_id
        self.locale = locale
        self.post: Post = post or (lambda u, b, h: client.post(u, b, h, timeout=timeout))
        self._checking = PROBE

    def _body(
        self,
        request: dict[str, Any] | None = None,
        *,
        skill_id: str | None = None,
        now: datetime | None = None,
    ) -> bytes:
        """A fresh valid LaunchRequest (or `request`) in a new session."""
        session = SessionState(skill_id or self.skill_id)
        return encode(envelope(request or launch_request(self.locale, now=now), session))

    def _send(self, check: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        self._checking = check  # named when this request gets no answer
        return self.post(self.url, body, headers)

    def _signed(self, check: str, body: bytes) -> Answer:
        return self._send(check, body, dict(self.sign(body)))

    def run(self) -> tuple[bool, list[Result]]:
        """(endpoint trusts the development CA, results).

        Raises CertifyStopped, holding the results so far, at the first check
        that gets no HTTP answer: an endpoint that hangs or breaks the
        connection would fail every check after it the same way, slowly.
        """
        trusts = False
        results: list[Result] = []
        try:
            probe = self._signed(PROBE, self._body())
            # Accepting a dev-CA-signed request is trusting the CA; whether the answer
            # is a valid response is the LaunchRequest check's business.
            trusts = probe.status == 200
            for check in self.negatives():
                results.append(self._refused(check, trusts))
            for result in self._positives(trusts, probe):
                results.append(result)
        except EndpointError as error:
            raise CertifyStopped(self._checking, error, trusts, results) from None
        return trusts, results

    def negatives(self) -> list[Negative]:
        def signed_headers(body: bytes, chain_url: str) -> dict[str, str]:
            headers = dict(self.sign(body))
            headers["SignatureCertChainUrl"] = chain_url
            return headers

        checks = []
        body = self._body()
        checks.append(Negative("no signature headers", body, {}, False))
        body = self._body()
        checks.append(Negative("empty certificate URL", body, signed_headers(body, ""), False))
        for url, what in AMAZON_INVALID_CERT_URLS:
            body = self._body()
            checks.append(
                Negative(f"certificate URL: {what}", body, signed_headers(body, url), False)
            )
        body = self._body()
        # A real signature by the right key, over other bytes.
        wrong = dict(self.sign(body + b" "))
        checks.append(Negative("bad signature", body, wrong, True))
        body = self._body()
        headers = dict(self.sign(body))
        checks.append(Negative("tampered body", _tampered(body), headers, True))
        body = self._body(now=datetime.now(UTC) - STALE_BY)
        checks.append(Negative("timestamp 151 s old", body, dict(self.sign(body)), True))
        wrong_id = WRONG_SKILL_ID if self.skill_id != WRONG_SKILL_ID else OTHER_WRONG_SKILL_ID
        body = self._body(skill_id=wrong_id)
        checks.append(Negative("wrong skill id", body, dict(self.sign(body)), True))
        body = self._body()[:-7]  # cut mid-structure: not JSON any more
        # Signed, so its 400 proves the JSON was refused only where the signature was checked.
        checks.append(Negative("malformed JSON", body, dict(self.sign(body)), True))
        return checks

    def _refused(self, check: Negative, trusts: bool) -> Result:
        answer = self._send(check.name, check.body, check.headers)
        if answer.status != 400:
            return Result(check.name, "400", FAIL, answer.status, _error_of(answer) or "accepted")
        detail = _error_of(answer)
        if check.needs_trust and not trusts:
            why = (
                "the endpoint does not trust the development CA, so the 400 may have another cause"
            )
            return Result(check.name, "400", NOT_ISOLATED, 400, f"{detail} ({why})".strip())
        return Result(check.name, "400", PASS, 400, detail)

    def _positives(self, trusts: bool, probe: Answer) -> Iterator[Result]:
        named = [
            ("valid LaunchRequest", None, False),
            ("valid IntentRequest (Help)", "intent", False),
            ("valid SessionEndedRequest", "ended", True),
        ]
        if not trusts:
            why = f"signed launch got {probe.status}"
            for name, _, _ in named:
                yield Result(name, "200", NOT_RUN, None, why)
            return
        for name, kind, ends in named:
            if kind is None:
                answer = probe
            elif kind == "intent":
                help_request = intent_request("AMAZON.HelpIntent", {}, self.locale)
                answer = self._signed(name, self._body(help_request))
            else:
                answer = self._signed(name, self._body(session_ended_request(self.locale)))
            problem = _response_problem(answer, ends=ends)
            verdict = PASS if problem is None else FAIL
            detail = problem or f"{answer.seconds * 1000:.0f} ms"
            yield Result(name, "200", verdict, answer.status, detail)


def _tampered(body: bytes) -> bytes:
    # Same shape, one character of the request id changed: only the signature can tell.
    document = json.loads(body)
    request_id = document["request"]["requestId"]
    document["request"]["requestId"] = request_id[:-1] + ("0" if request_id[-1] != "0" else "1")
    return encode(document)


def _error_of(answer: Answer) -> str:
    """The endpoint's reason, when it gives one in a JSON body ({"error": ...})."""
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):  # deep nesting exhausts the decoder's stack
        return ""
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return ""


def _response_problem(answer: Answer, *, ends: bool) -> str | None:
    """Why an answer is not a valid Alexa response (None when it is)."""
    if answer.status != 200:
        return f"HTTP {answer.status} {_error_of(answer)}".strip()
    if answer.seconds > ALEXA_TIMEOUT:
        return f"took {answer.seconds:.1f} s (Alexa waits {ALEXA_TIMEOUT:.0f} s)"
    if len(answer.body) > MAX_RESPONSE_BYTES:
        return f"response is {len(answer.body)} bytes (limit {MAX_RESPONSE_BYTES})"
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        return "response is not JSON"
    if not isinstance(document, dict) or not isinstance(document.get("response"), dict):
        return "no response object"
    if not isinstance(document.get("version"), str):
        return "no version"
    response = document["response"]
    speech = response.get("outputSpeech")
    if ends and speech is not None:
        return "a SessionEndedRequest answer may not speak"
    if speech is not None:
        problem = _speech_problem(speech)
        if problem:
            return problem
    try:
        from ask_sdk_core.serialize import DefaultSerializer
        from ask_sdk_model import ResponseEnvelope

        DefaultSerializer().deserialize(answer.body.decode("utf-8"), ResponseEnvelope)
    except Exception as exc:  # the SDK's model raises assorted errors on bad shapes
        return f"not an ASK response: {exc}"
    return None


def _speech_problem(speech: Any) -> str | None:
    if not isinstance(speech, dict):
        return "outputSpeech is not an object"
    if speech.get("type") == "SSML":
        ssml = speech.get("ssml")
        if not isinstance(ssml, str) or not ssml.strip().startswith("<speak>"):
            return "SSML outputSpeech without <speak>"
        return None
    if speech.get("type") == "PlainText":
        return None if isinstance(speech.get("text"), str) else "PlainText without text"
    return f"unknown outputSpeech type {speech.get('type')!r}"


def print_results(url: str, trusts: bool, results: list[Result]) -> int:
    """The table of results; 1 when a check failed. The endpoint's words are cells as `Text`."""
    from rich.table import Table
    from rich.text import Text

    from funker_dispatch.devtools.terminal import console as tool_console
    from funker_dispatch.devtools.terminal import plain

    styles = {PASS: "green", FAIL: "bold red", NOT_ISOLATED: "yellow", NOT_RUN: "dim"}
    table = Table(title=plain(f"certify {url}"))
    table.add_column("check", no_wrap=True)
    for column in ("want", "got", "result"):
        table.add_column(column)
    table.add_column("detail", min_width=14)
    for result in results:
        style = styles[result.verdict]
        table.add_row(
            Text(result.check),
            result.expected,
            "-" if result.status is None else str(result.status),
            Text(result.verdict, style=style),
            plain(result.detail),
        )
    console = tool_console(file=sys.stdout, highlight=False)
    console.print(table)
    failed = sum(1 for r in results if r.verdict == FAIL)
    counts = {v: sum(1 for r in results if r.verdict == v) for v in styles}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items() if n))
    if not trusts:
        # Text, not markup: rich would take "[verification]" for a tag and drop it.
        note = (
            "the endpoint does not trust the development CA (a signed LaunchRequest was "
            "refused): a 400 to a check that needs a valid signature to isolate its fault proves "
            "nothing, and valid requests cannot be sent. To run every check, point the endpoint's "
            "[verification] trusted_roots and local_chains at the development CA."
        )
        console.print(Text(note, style="yellow"))
    return 1 if failed else 0


def certify_command(
    url: str, *, skill_id: str | None = None, timeout: float = client.DEFAULT_TIMEOUT
) -> int:
    """0 when nothing failed, 1 when a check failed, 2 when a check got no HTTP answer."""
    from verification.devca import DevCA

    ca = DevCA.load_or_create()
    certifier = Certifier(
        url, sign=ca.sign, skill_id=skill_id or DEVELOPMENT_SKILL_ID, timeout=timeout
    )
    try:
        trusts, results = certifier.run()
    except CertifyStopped as stop:
        if stop.results:
            print_results(url, stop.trusts, stop.results)
        sys.stdout.flush()  # the table first, then why it ends there
        print(f"funker-dispatch certify: {stop}", file=sys.stderr)
        return 2
    return print_results(url, trusts, results)
