"""Request verification: Alexa (as ASK SDK verifiers), SNS, EventBridge and GitHub; the SDK import
fix; the dev CA."""

from verification import sdkcompat

sdkcompat.install()  # before anything below imports ask_sdk_webservice_support

from verification.application_id import ApplicationIdVerifier  # noqa: E402
from verification.chains import ChainCache  # noqa: E402
from verification.devca import DevCA  # noqa: E402
from verification.errors import VerificationFailed  # noqa: E402
from verification.eventbridge import EventBridgeAuth  # noqa: E402
from verification.github import GitHubSignature  # noqa: E402
from verification.signature import SignatureVerifier  # noqa: E402
from verification.sns import SnsVerifier  # noqa: E402
from verification.timestamp import TimestampVerifier  # noqa: E402

__all__ = [
    "ApplicationIdVerifier",
    "ChainCache",
    "DevCA",
    "EventBridgeAuth",
    "GitHubSignature",
    "SignatureVerifier",
    "SnsVerifier",
    "TimestampVerifier",
    "VerificationFailed",
]
