"""Row checks that need no database: header matching, value parsing and the per-kind rules."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.errors import InvalidInput
from services.core.imports import formats
from services.core.imports import values as v
from services.core.models.imports import ImportKind

INTERACTIONS = formats.SCHEMAS[ImportKind.interactions]
CUSTOMERS = formats.SCHEMAS[ImportKind.customers]
CHANNELS = formats.SCHEMAS[ImportKind.channels]
TICKETS = formats.SCHEMAS[ImportKind.tickets]
HEADER = ["External ID", "customer-external-ref", "KIND", "occurred_at", "amount", "currency"]


def _row(
    cells: list[str], names: list[str] | None = None
) -> tuple[formats.Values, list[formats.Problem]]:
    header = formats.read_header(INTERACTIONS, names or HEADER)
    return formats.parse_cells(header, cells)


def test_header_matches_names_loosely_in_any_order() -> None:
    header = formats.read_header(INTERACTIONS, [*HEADER, "attributes.SKU count"])
    assert header.names[:3] == ("external_id", "customer_external_ref", "kind")
    assert [c.name for _, c in header.cells] == [
        "external_id",
        "customer_external_ref",
        "kind",
        "occurred_at",
        "amount",
        "currency",
    ]
    assert header.attribute_cells == ((6, "SKU count"),)


def test_header_refuses_unknown_missing_and_repeated_columns() -> None:
    with pytest.raises(InvalidInput) as caught:
        formats.read_header(INTERACTIONS, ["external_id", "kind", "kind", "colour", ""])
    problems = {(e.field, e.type) for e in caught.value.errors}
    assert problems == {
        ("kind", "duplicate"),
        ("colour", "unknown"),
        ("", "unnamed"),
        ("occurred_at", "missing"),
        ("customer_id or customer_external_ref", "missing"),
    }
    assert "colour is not a column of interactions" in str(caught.value)


def test_a_customers_file_is_refused_as_interactions() -> None:
    with pytest.raises(InvalidInput):
        formats.read_header(INTERACTIONS, ["external_ref", "name", "email"])
    with pytest.raises(InvalidInput):
        formats.check_keys(INTERACTIONS, ["external_ref", "name"])
    formats.check_keys(CUSTOMERS, ["external_ref", "Name", "attributes.x"])


def test_a_good_row_is_typed() -> None:
    row, problems = _row(["o-1", " C-1 ", "order", "2026-03-01T10:30:00+08:00", "1280.5", "usd"])
    assert problems == []
    assert row == {
        "external_id": "o-1",
        "customer_external_ref": "C-1",
        "kind": "order",
        "occurred_at": datetime(2026, 3, 1, 2, 30, tzinfo=UTC),
        "amount": Decimal("1280.5"),
        "currency": "USD",
    }
    assert row["occurred_at"].utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["", "C-1", "visit", "2026-03-01", "", ""], [("occurred_at", "has no time zone")]),
        (["", "C-1", "visit", "2026-02-30T10:00:00Z", "", ""], [("occurred_at", "not an ISO")]),
        (["", "C-1", "visit", "yesterday", "", ""], [("occurred_at", "not an ISO 8601")]),
        (["", "C-1", "order", "2026-03-01T10:00Z", "1,280.00", ""], [("amount", "not an amount")]),
        (["", "C-1", "order", "2026-03-01T10:00Z", "-5", ""], [("amount", "not an amount")]),
        (["", "C-1", "order", "2026-03-01T10:00Z", "1.23456", ""], [("amount", "4 decimal")]),
        (["", "C-1", "order", "2026-03-01T10:00Z", "1" + "0" * 14, ""], [("amount", "10^14")]),
        (["", "C-1", "order", "2026-03-01T10:00Z", "", ""], [("amount", "needs an amount")]),
        (["", "C-1", "visit", "2026-03-01T10:00Z", "3", ""], [("amount", "only orders")]),
        (["", "C-1", "order", "2026-03-01T10:00Z", "3", "XYZ"], [("currency", "ISO 4217")]),
        (["", "C-1", "purchase", "2026-03-01T10:00Z", "", ""], [("kind", "not one of")]),
        (["", "", "visit", "2026-03-01T10:00Z", "", ""], [("customer_external_ref", "required")]),
        (["", "C-1", "", "", "", ""], [("kind", "is required"), ("occurred_at", "is required")]),
        (["x" * 201, "C-1", "visit", "2026-03-01T10:00Z", "", ""], [("external_id", "longer")]),
        (["a\x00b", "C-1", "visit", "2026-03-01T10:00Z", "", ""], [("external_id", "NUL")]),
    ],
)
def test_bad_values_name_their_field(cells: list[str], expected: list[tuple[str, str]]) -> None:
    _, problems = _row(cells)
    assert [name for name, _ in problems] == [name for name, _ in expected]
    for (_, reason), (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in reason


def test_feedback_needs_a_rating_and_only_feedback_has_one() -> None:
    names = ["customer_id", "kind", "occurred_at", "satisfaction", "nps"]
    customer = "0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d"
    _, problems = _row([customer, "feedback", "2026-03-01T10:00Z", "", ""], names)
    assert problems == [("satisfaction", "feedback needs satisfaction (1-5) or nps (0-10)")]
    _, problems = _row([customer, "call", "2026-03-01T10:00Z", "4", ""], names)
    assert problems == [("satisfaction", "only feedback carries satisfaction")]
    _, problems = _row([customer, "feedback", "2026-03-01T10:00Z", "6", "11"], names)
    assert problems == [("satisfaction", "must be 1 to 5"), ("nps", "must be 0 to 10")]
    row, problems = _row([customer, "feedback", "2026-03-01T10:00Z", "", "9"], names)
    assert problems == []
    assert row["nps"] == 9


def test_both_customer_references_are_refused() -> None:
    names = ["customer_id", "customer_external_ref", "kind", "occurred_at"]
    cells = ["0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d", "C-1", "visit", "2026-03-01T10:00Z"]
    _, problems = _row(cells, names)
    assert problems == [
        ("customer_external_ref", "give customer_id or customer_external_ref, not both")
    ]
    _, problems = _row(["not-a-uuid", "", "visit", "2026-03-01T10:00Z"], names)
    assert problems == [("customer_id", "is not a UUID")]


def test_a_row_with_the_wrong_number_of_cells_fails_whole() -> None:
    _, problems = _row(["o-1", "C-1", "visit"])
    assert problems == [("", "has 3 values; the header has 6 columns")]


def test_attribute_columns_join_the_attributes_object() -> None:
    names = ["customer_external_ref", "kind", "occurred_at", "attributes", "attributes.sku"]
    row, problems = _row(["C-1", "visit", "2026-03-01T10:00Z", '{"sku": "A", "n": 1}', "B"], names)
    assert problems == []
    assert row["attributes"] == {"sku": "B", "n": 1}
    _, problems = _row(["C-1", "visit", "2026-03-01T10:00Z", "[1, 2]", ""], names)
    assert problems == [("attributes", "must be a JSON object, not a list")]


def test_ndjson_values_keep_their_json_types() -> None:
    row, problems = formats.parse_object(
        INTERACTIONS,
        {
            "customer_external_ref": 10086,
            "kind": "order",
            "occurred_at": "2026-03-01T10:30:00Z",
            "amount": 12.5,
            "summary": None,
            "attributes": {"sku": ["a", "b"]},
            "attributes.channel": "wechat",
        },
    )
    assert problems == []
    assert row["customer_external_ref"] == "10086"
    assert row["amount"] == Decimal("12.5")
    assert "summary" not in row
    assert row["attributes"] == {"sku": ["a", "b"], "channel": "wechat"}
    _, problems = formats.parse_object(
        INTERACTIONS,
        {"customer_external_ref": True, "kind": "visit", "occurred_at": 5, "colour": "red"},
    )
    assert problems == [
        ("customer_external_ref", "must be text, not true/false"),
        ("occurred_at", "'5' is not an ISO 8601 time, e.g. 2026-03-01T10:30:00+08:00"),
        ("colour", "is not a field of interactions"),
    ]
    assert formats.parse_object(INTERACTIONS, [1, 2]) == ({}, [("", "is not a JSON object")])


def test_customer_channel_and_ticket_rules() -> None:
    header = formats.read_header(CUSTOMERS, ["external_ref", "email", "birthday", "tags"])
    future = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    row, problems = formats.parse_cells(header, ["C-1", "not-mail", future, "vip| 华东 |vip||"])
    assert problems == [("email", "is not an e-mail address"), ("birthday", "is in the future")]
    assert row["tags"] == ["vip", "华东"]

    header = formats.read_header(CHANNELS, ["external_ref", "contract_start", "contract_end"])
    _, problems = formats.parse_cells(header, ["CH-1", "2026-05-01", "2026-04-30"])
    assert problems == [("contract_end", "is before contract_start")]
    row, problems = formats.parse_cells(header, ["CH-1", "2026-05-01", "2026-05-01"])
    assert problems == []
    assert row["contract_end"] == date(2026, 5, 1)

    base = {
        "external_id": "t-1",
        "customer_external_ref": "C-1",
        "subject": "配送延迟",
        "kind": "complaint",
        "created_at": "2026-05-06T11:25:00+08:00",
    }
    _, problems = formats.parse_object(
        TICKETS, {**base, "status": "open", "resolved_at": "2026-05-07T00:00:00+08:00"}
    )
    assert problems == [("resolved_at", "is given but status is open")]
    _, problems = formats.parse_object(
        TICKETS, {**base, "first_responded_at": "2026-05-06T11:00:00+08:00"}
    )
    assert problems == [("first_responded_at", "is before created_at")]
    _, problems = formats.parse_object(TICKETS, {"external_id": "t-2", "kind": "request"})
    assert problems == [
        ("subject", "is required"),
        ("customer_external_ref", "customer_id or customer_external_ref is required"),
    ]


@given(
    st.decimals(min_value=0, max_value=Decimal("99999999999999.9999"), places=4, allow_nan=False)
)
def test_amounts_read_back_exactly(amount: Decimal) -> None:
    assert v.amount(f"{amount:f}") == amount


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=5, max_value=8))
def test_amounts_with_more_than_four_places_are_refused(whole: int, places: int) -> None:
    with pytest.raises(ValueError, match="more than 4 decimal places"):
        v.amount(f"{whole}.{'1' * places}")


@given(st.datetimes(timezones=st.just(timezone(timedelta(hours=8)))))
def test_times_read_back_exactly(moment: datetime) -> None:
    assert v.timestamp(moment.isoformat()) == moment
