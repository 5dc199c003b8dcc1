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


def test_a_metrics_children_are_the_ones_labels_gives_and_count_there():
    from prometheus_client import CollectorRegistry, Counter

    from skill.observability import Children

    counter = Counter("c", "x", ["request_type", "outcome"], registry=CollectorRegistry())
    child = Children(counter)
    child("IntentRequest", "ok").inc()
    child("IntentRequest", "ok").inc()
    child("LaunchRequest", "apology").inc()
    assert child("IntentRequest", "ok") is counter.labels("IntentRequest", "ok")
    counts = {
        (s.labels["request_type"], s.labels["outcome"]): s.value
        for s in counter.collect()[0].samples
        if s.name == "c_total"
    }
    assert counts == {("IntentRequest", "ok"): 2.0, ("LaunchRequest", "apology"): 1.0}
