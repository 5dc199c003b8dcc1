"""Label bounding and id hashing: what keeps metrics and logs safe from request content."""

from skill.observability import LabelPolicy, short_hash


def test_ids_are_hashed_short_and_stable_even_with_lone_surrogates():
    assert short_hash("amzn1.ask.account.X") == short_hash("amzn1.ask.account.X")
    assert len(short_hash("\ud800 broken")) == 12
    assert short_hash(None) is None and short_hash("") is None


def test_untrusted_names_become_other():
    labels = LabelPolicy(["SpaceCountIntent"], ["IntentRequest"])
    assert labels.intent("SpaceCountIntent") == "SpaceCountIntent"
    assert labels.intent("AttackerChosen123") == "other"
    assert labels.request_type("Made.Up") == "other"
    assert labels.locale("en-GB") == "en-GB"
    assert labels.locale("xx-XX") == "other"
