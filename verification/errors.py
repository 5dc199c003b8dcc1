"""Verification failures, one class per reason code the logs and metrics name."""

from __future__ import annotations

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_webservice_support.verifier import VerificationException  # noqa: E402


class VerificationFailed(VerificationException):
    """A request failed verification; `reason` is a stable code (docs/alexa.md).

    `message` is short, fixed text that may be shown to the HTTP client; `detail`
    (or None) is what happened in full — resolver errors, exception text, local
    paths — for the operator log only, never for the client.
    """

    reason = "verification"

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class HeadersMissing(VerificationFailed):
    """The signature or certificate URL header is absent or unreadable."""

    reason = "headers"


class CertUrlInvalid(VerificationFailed):
    """The certificate chain URL breaks Amazon's URL rules."""

    reason = "cert-url"


class CertFetchFailed(VerificationFailed):
    """The certificate chain could not be fetched (network, size, redirect, status)."""

    reason = "cert-fetch"


class ChainInvalid(VerificationFailed):
    """The chain does not lead to a trusted root, or cannot be parsed."""

    reason = "chain"


class SanMismatch(VerificationFailed):
    """The leaf certificate's SAN does not contain echo-api.amazon.com."""

    reason = "san"


class CertExpired(VerificationFailed):
    """The leaf certificate's notAfter has passed."""

    reason = "expired"


class CertNotYetValid(VerificationFailed):
    """The leaf certificate's notBefore is still in the future."""

    reason = "not-yet-valid"


class SignatureInvalid(VerificationFailed):
    """The body's signature does not verify with the leaf's key."""

    reason = "signature"


class TimestampInvalid(VerificationFailed):
    """The request timestamp is missing or too far from now."""

    reason = "timestamp"


class ApplicationIdInvalid(VerificationFailed):
    """The skill id is missing or not in the allowlist."""

    reason = "application-id"


# --- SNS (docs/events/index.md): one class per reason code of the SNS endpoint --------------------


class SnsVerificationFailed(VerificationFailed):
    """An SNS delivery failed verification; `status` is the HTTP answer (400 unless said)."""

    reason = "sns"
    status = 400


class SnsMalformed(SnsVerificationFailed):
    """The body is not a JSON object, or a signed field is missing or not a string."""

    reason = "sns-malformed"


class SnsHeaders(SnsVerificationFailed):
    """The x-amz-sns-message-type header is missing or is not the body's Type."""

    reason = "sns-headers"


class SnsCertUrl(SnsVerificationFailed):
    """The SigningCertURL breaks the SNS URL rule (checked before any fetch)."""

    reason = "sns-cert-url"


class SnsCertFetch(SnsVerificationFailed):
    """The signing certificate chain could not be had now (host unreachable, fetches busy).

    503, not 400: SNS retries only 5xx, and this is a passing condition, so a
    4xx would silently drop a genuine message (docs/events/index.md).
    """

    reason = "sns-cert-fetch"
    status = 503


class SnsChain(SnsVerificationFailed):
    """The chain is untrusted, expired, not yet valid, for another name, or may not sign."""

    reason = "sns-chain"


class SnsSignature(SnsVerificationFailed):
    """The signature is missing, of an unknown SignatureVersion, or does not match."""

    reason = "sns-signature"


class SnsTopic(SnsVerificationFailed):
    """The message's TopicArn is not in the allowlist (an empty allowlist refuses all)."""

    reason = "sns-topic"
    status = 403


class SnsStale(SnsVerificationFailed):
    """The Timestamp is older than max_age (a replay) or more than 300 s in the future."""

    reason = "sns-stale"


class SnsRaw(SnsVerificationFailed):
    """A raw message delivery, which carries no signature, and raw delivery is not allowed."""

    reason = "sns-raw"


class SnsSubscribeUrl(SnsVerificationFailed):
    """A SubscribeURL that is not SNS's own confirmation URL for this topic: never fetched."""

    reason = "sns-subscribe-url"


# --- EventBridge and GitHub (docs/events/index.md) ------------------------------------------------


class EventVerificationFailed(VerificationFailed):
    """An EventBridge or GitHub delivery was refused; `status` is the HTTP answer."""

    reason = "event"
    status = 401


class EventBridgeAuthFailed(EventVerificationFailed):
    """The API destination's connection credential is missing or wrong."""

    reason = "eventbridge-auth"


class GitHubSignatureInvalid(EventVerificationFailed):
    """X-Hub-Signature-256 is missing, malformed, or not the HMAC of the body with our secret."""

    reason = "github-signature"
