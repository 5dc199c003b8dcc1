"""DynamoDB stream records as events: the record kept as sent, its images as exact plain JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triggers.dynamodb import item, number, plain, record_event, table_name
from triggers.events import MalformedDelivery, payload

BATCH = json.loads(
    (Path(__file__).parent / "fixtures" / "events" / "dynamodb-batch.json").read_text()
)
RECEIVED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_an_insert_becomes_one_event_with_converted_images_and_the_record_as_sent():
    event = record_event(BATCH[0], received=RECEIVED)
    assert (event.source, event.id) == ("dynamodb", "c4ca4238a0b923820dcc509a6f75849b")
    assert event.time == "2025-12-01T09:14:05.000Z"
    assert event.match == {"table": "Orders", "event": "INSERT"}
    assert event.attributes == {
        "table": "Orders",
        "event_source_arn": BATCH[0]["eventSourceARN"],
    }
    sent = payload(event, "orders")
    assert sent["event"] == BATCH[0]  # DynamoDB JSON stays as sent
    assert sent["dynamodb"] == {
        "keys": {"id": 101},
        "new": {
            "id": 101,
            "customer": "Ada",
            "total": "19.99",
            "lines": [{"sku": "TSHIRT-L", "quantity": 2}],
            "gift": False,
            "note": None,
            "tags": ["new", "web"],
            "barcode": "AAEC/w==",
        },
        "old": None,
    }


def test_modify_has_both_images_and_remove_only_the_old():
    modify = payload(record_event(BATCH[1], received=RECEIVED), "r")["dynamodb"]
    assert (modify["new"]["status"], modify["old"]["status"]) == ("shipped", "paid")
    remove = payload(record_event(BATCH[2], received=RECEIVED), "r")["dynamodb"]
    assert remove == {
        "keys": {"email": "ada@example.com"},
        "new": None,
        "old": {"email": "ada@example.com", "visits": 3},
    }


@pytest.mark.parametrize(
    ("sent", "plain_value"),
    [
        ("0", 0),
        ("-0", 0),
        ("42", 42),
        ("-17", -17),
        ("1E+3", 1000),
        ("2.50E+1", 25),
        ("9007199254740992", 2**53),
        ("-9007199254740992", -(2**53)),
        ("9007199254740993", "9007199254740993"),  # a double would round it to ...992
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1E+400000000", "1E+400000000"),
        ("0.1", "0.1"),
        ("19.99", "19.99"),
        ("1.000000000000000000000000000000000001", "1.000000000000000000000000000000000001"),
        ("1E-130", "1E-130"),
    ],
)
def test_numbers_are_exact_integers_within_two_to_the_53_and_strings_otherwise(sent, plain_value):
    assert number(sent) == plain_value
    assert type(number(sent)) is type(plain_value)


@pytest.mark.parametrize("sent", ["", "NaN", "Infinity", " 1", "1_000", "0x10", "1e", "--1"])
def test_what_dynamodb_never_writes_as_a_number_is_malformed(sent):
    with pytest.raises(ValueError):
        number(sent)


def test_every_type_converts():
    assert plain({"NS": ["1", "1.5", "99999999999999999999"]}) == [1, "1.5", "99999999999999999999"]
    assert plain({"BS": ["AAE=", "Ag=="]}) == ["AAE=", "Ag=="]
    assert plain({"M": {"a": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": True}]}}}) == {
        "a": ["x", None, True]
    }
    assert item(None) is None and item({}) == {}


@pytest.mark.parametrize(
    "value",
    [
        {"S": 1},
        {"N": 5},
        {"BOOL": "true"},
        {"NULL": False},
        {"X": "y"},
        {"S": "a", "N": "1"},
        "plain",
        {"SS": ["a", 1]},
        {"L": {"S": "x"}},
    ],
)
def test_a_malformed_attribute_value_is_refused(value):
    with pytest.raises(ValueError):
        plain(value)


def test_nesting_deeper_than_dynamodb_allows_is_refused_not_a_recursion_error():
    value: dict = {"S": "bottom"}
    for _ in range(2000):
        value = {"L": [value]}
    with pytest.raises(ValueError, match="nested deeper"):
        plain(value)


def test_a_record_missing_what_identifies_it_is_malformed():
    for broken in (
        {**BATCH[0], "eventID": None},
        {**BATCH[0], "eventName": "UPSERT"},
        {**BATCH[0], "dynamodb": "x"},
        {**BATCH[0], "dynamodb": {"NewImage": {"id": {"Q": "1"}}}},
    ):
        with pytest.raises(MalformedDelivery):
            record_event(broken, received=RECEIVED)


def test_the_table_comes_from_the_stream_arn():
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/Orders-v2/stream/2026-01-01T00:00:00.000"
    assert table_name(arn) == "Orders-v2"
    assert table_name("arn:aws:dynamodb:eu-west-1:123456789012:table/Orders") == "Orders"
    assert table_name("arn:aws:sqs:eu-west-1:123456789012:queue") == ""
    assert table_name("") == ""


def test_the_creation_time_in_seconds_or_milliseconds_else_the_receive_time():
    def at(stamp):
        record = {
            **BATCH[0],
            "dynamodb": {**BATCH[0]["dynamodb"], "ApproximateCreationDateTime": stamp},
        }
        return record_event(record, received=RECEIVED).time

    assert at(1764580445.25) == "2025-12-01T09:14:05.250Z"
    assert at(1764580445250) == "2025-12-01T09:14:05.250Z"
    assert at(None) == at("yesterday") == at(True) == "2026-12-01T09:00:00.000Z"


@given(st.integers())
def test_any_integer_comes_back_exact_an_int_within_two_to_the_53_else_its_digits(n):
    from funker_dispatch.devtools.eventsamples import to_dynamodb

    assert plain(to_dynamodb(n)) == (n if abs(n) <= 2**53 else str(n))


@given(
    st.recursive(
        st.none() | st.booleans() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_plain_json_written_as_dynamodb_json_reads_back_the_same(value):
    from funker_dispatch.devtools.eventsamples import to_dynamodb

    assert plain(to_dynamodb(value)) == value
