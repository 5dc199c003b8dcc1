"""SNS's URL rules: the SigningCertURL before any fetch, the SubscribeURL before confirming."""

from __future__ import annotations

import pytest

from verification.errors import SnsVerificationFailed
from verification.snsurl import (
    check_signing_cert_url,
    check_subscribe_url,
    sns_host_region,
    topic_region,
)

TOPIC = "arn:aws:sns:us-east-2:123456789012:uploads"
CONFIRM = (
    "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425dacbba2ec5b2f"
)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (
            "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5.pem",
            "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5.pem",
        ),
        (
            "HTTPS://SNS.eu-west-1.AMAZONAWS.COM:443/a/../SimpleNotificationService-1.pem",
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        ),
        (
            "https://sns.cn-northwest-1.amazonaws.com.cn/SimpleNotificationService-2.pem",
            "https://sns.cn-northwest-1.amazonaws.com.cn/SimpleNotificationService-2.pem",
        ),
        (
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-3.pem",
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-3.pem",
        ),
    ],
)
def test_sns_signing_cert_urls_are_accepted_and_normalised(url, normalised):
    assert check_signing_cert_url(url) == normalised


@pytest.mark.parametrize(
    "url",
    [
        "https://s3.amazonaws.com/bucket/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem\n",
        "https://sns.us-east-1.amazonaws.com:443:1/x.pem",
        "https://sns.us-east-1.amazonaws.com:99999/x.pem",
        "https://sns..amazonaws.com/x.pem",
        "https://sns.useast1.amazonaws.com/x.pem",
        "ftp://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?",
        "https://sns.us-east-1.amazonaws.com/x%2Fy.pem",
        None,
    ],
)
def test_other_urls_are_refused(url):
    with pytest.raises(SnsVerificationFailed) as refused:
        check_signing_cert_url(url)
    assert refused.value.reason == "sns-cert-url"


def test_hosts_and_topic_regions():
    assert sns_host_region("sns.ap-southeast-5.amazonaws.com") == "ap-southeast-5"
    assert sns_host_region("sns.cn-north-1.amazonaws.com.cn") == "cn-north-1"
    assert sns_host_region("sns.cn-north-1.amazonaws.com") is None
    assert sns_host_region("sns.amazonaws.com") is None
    assert topic_region(TOPIC) == "us-east-2"
    assert topic_region("arn:aws:sns:us-east-2:12345:short-account") is None


def test_sns_own_confirmation_url_is_accepted():
    assert check_subscribe_url(CONFIRM, TOPIC) == CONFIRM


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9999/",  # the SSRF of CVE-2026-32096
        CONFIRM.replace("https://", "http://"),
        CONFIRM.replace("sns.us-east-2.amazonaws.com", "sns.us-east-2.amazonaws.com.evil.com"),
        CONFIRM.replace("sns.us-east-2.amazonaws.com", "169.254.169.254"),
        CONFIRM.replace("sns.us-east-2.amazonaws.com", "sns.us-east-2.amazonaws.com:8443"),
        CONFIRM.replace("sns.us-east-2", "sns.eu-west-1"),  # not the topic's region
        CONFIRM.replace("Action=ConfirmSubscription", "Action=Unsubscribe"),
        CONFIRM.replace(TOPIC, TOPIC + "2"),
        CONFIRM.replace("&Token=2336412f37fb687f5d51e6e2425dacbba2ec5b2f", "&Token="),
        CONFIRM.replace("&Token=2336412f37fb687f5d51e6e2425dacbba2ec5b2f", ""),
        CONFIRM + "&Action=ConfirmSubscription",
        CONFIRM + "&Redirect=http://127.0.0.1/",
        CONFIRM.replace(".com/?", ".com/admin?"),
        CONFIRM + "#fragment",
        CONFIRM.replace("https://", "https://user@"),
    ],
)
def test_any_other_subscribe_url_is_refused(url):
    with pytest.raises(SnsVerificationFailed) as refused:
        check_subscribe_url(url, TOPIC)
    assert refused.value.reason == "sns-subscribe-url"
    assert refused.value.status == 400
