"""The skill's signature verifier treats `[verification.local_chains]` URLs as known chains."""

from __future__ import annotations

from skill.settings import load_settings
from skill.verifiers import signature_verifier
from tests import pki


def test_local_chain_urls_are_known_from_the_start(tmp_path):
    chain = pki.alexa_chain()
    pem = tmp_path / "chain.pem"
    pem.write_bytes(chain.pem)
    config = tmp_path / "dispatch.toml"
    config.write_text(
        '[skill]\napplication_ids = ["amzn1.ask.skill.test"]\n\n'
        "[verification.local_chains]\n"
        f'"{chain.url}" = "{pem}"\n'
        # Another sender's URL (an SNS one) beside it is simply not Alexa's business.
        f'"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem" = "{pem}"\n'
    )
    verifier = signature_verifier(load_settings(config, environ={}))

    spelled = chain.url.replace("s3.amazonaws.com", "S3.AmazonAWS.com:443")
    assert verifier.chains.is_known(spelled)
    assert not verifier.chains.is_known("https://s3.amazonaws.com/echo.api/other.pem")
