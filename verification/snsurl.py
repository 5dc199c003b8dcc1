"""Amazon SNS's URL rules: the SigningCertURL (before any fetch) and the SubscribeURL (SSRF guard).

Both name an address that the message itself chooses, so an unsigned or
hostile message could make us connect anywhere. SNS only ever sends its own
regional endpoint: `https://sns.<region>.amazonaws.com/...`, or
`...amazonaws.com.cn` in the China regions. Nothing else under amazonaws.com
is accepted — `s3.amazonaws.com` serves any public bucket, so a certificate
there proves nothing (gateways that trusted it accepted forged messages).

The same hardening as Alexa's URL rule applies (`certurl.py`): printable
ASCII only, no userinfo, no fragment, no backslashes or percent-encoded
separators, dot segments removed as a URL client removes them, and the URL
returned — the one fetched — is the normalised one that was checked.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from verification.certurl import _ENCODED_SEPARATOR, _PLAIN, remove_dot_segments
from verification.errors import SnsCertUrl, SnsSubscribeUrl, SnsVerificationFailed

# A region as AWS spells them: us-east-2, us-gov-west-1, ap-southeast-5, cn-northwest-1.
REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
_HOST = re.compile(rf"sns\.(?P<region>{REGION})\.amazonaws\.com(?P<cn>\.cn)?")
# arn:<partition>:sns:<region>:<account>:<name>
_TOPIC_ARN = re.compile(
    rf"arn:aws(?:-cn|-us-gov)?:sns:(?P<region>{REGION}):[0-9]{{12}}:[A-Za-z0-9_.-]{{1,256}}"
)


def sns_host_region(host: str) -> str | None:
    """The region of an SNS endpoint host (`sns.eu-west-1.amazonaws.com`), else None.

    China regions (`cn-*`) live under `amazonaws.com.cn` and only there.
    """
    found = _HOST.fullmatch(host.lower())
    if found is None:
        return None
    region = found.group("region")
    if region.startswith("cn-") != bool(found.group("cn")):
        return None
    return region


def topic_region(topic_arn: str) -> str | None:
    """The region of an SNS topic ARN, or None when it is not one."""
    found = _TOPIC_ARN.fullmatch(topic_arn) if isinstance(topic_arn, str) else None
    return found.group("region") if found else None


def check_signing_cert_url(url: str) -> str:
    """The normalised SigningCertURL, or SnsCertUrl naming the broken rule."""
    parts = _split(url, SnsCertUrl, "certificate URL")
    if parts.query or "?" in url:
        raise SnsCertUrl("certificate URL is not an SNS signing certificate URL", "it has a query")
    path = _path(parts, SnsCertUrl, "certificate URL")
    if not path.endswith(".pem"):
        raise SnsCertUrl(
            "certificate URL is not an SNS signing certificate URL", "path does not end in .pem"
        )
    return urlunsplit(("https", parts.hostname, path, "", ""))


def check_subscribe_url(url: str, topic_arn: str) -> str:
    """The SubscribeURL to GET, once it is SNS's own ConfirmSubscription URL for `topic_arn`.

    https on the SNS endpoint of the topic's own region, path `/`, and a query
    of exactly `Action=ConfirmSubscription`, this `TopicArn` and a `Token`:
    a confirmation message must not make the dispatcher fetch anything else
    (CVE-2026-32096 was a gateway that GET any SubscribeURL it was sent).
    """
    refused = "SubscribeURL is not an SNS confirmation URL for this topic"
    parts = _split(url, SnsSubscribeUrl, "SubscribeURL")
    if _path(parts, SnsSubscribeUrl, "SubscribeURL") not in ("", "/"):
        raise SnsSubscribeUrl(refused, "SubscribeURL path is not /")
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise SnsSubscribeUrl(refused, "SubscribeURL query does not parse") from None
    names = [name for name, _ in query]
    values = dict(query)
    if sorted(names) != ["Action", "Token", "TopicArn"]:
        raise SnsSubscribeUrl(refused, "SubscribeURL query is not Action, TopicArn and Token")
    if values["Action"] != "ConfirmSubscription":
        raise SnsSubscribeUrl(refused, "SubscribeURL Action is not ConfirmSubscription")
    if values["TopicArn"] != topic_arn:
        raise SnsSubscribeUrl(refused, "SubscribeURL TopicArn is not the message's TopicArn")
    if not values["Token"]:
        raise SnsSubscribeUrl(refused, "SubscribeURL has an empty Token")
    region = topic_region(topic_arn)
    if region is None or sns_host_region(parts.hostname or "") != region:
        raise SnsSubscribeUrl(refused, "SubscribeURL host is not the topic region's SNS endpoint")
    return urlunsplit(("https", parts.hostname, "/", parts.query, ""))


def _split(url: str, error: type[SnsVerificationFailed], what: str) -> SplitResult:
    refused = f"{what} is not an SNS URL"
    if not isinstance(url, str) or not _PLAIN.fullmatch(url):
        raise error(refused, f"{what} has spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a non-numeric or out-of-range port
        raise error(refused, f"{what} does not parse: {exc}") from None
    if parts.scheme.lower() != "https":
        raise error(refused, f"{what} scheme is not https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise error(refused, f"{what} carries userinfo")
    if sns_host_region(parts.hostname or "") is None:
        raise error(refused, f"{what} host is not sns.<region>.amazonaws.com(.cn)")
    if port not in (None, 443):
        raise error(refused, f"{what} port is not 443")
    if parts.fragment or "#" in url:
        raise error(refused, f"{what} has a fragment")
    return parts


def _path(parts: SplitResult, error: type[SnsVerificationFailed], what: str) -> str:
    if "\\" in parts.path or _ENCODED_SEPARATOR.search(parts.path):
        raise error(
            f"{what} is not an SNS URL", f"{what} path has backslashes or encoded separators"
        )
    return remove_dot_segments(parts.path)
