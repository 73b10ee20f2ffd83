import json
from datetime import datetime

import polars as pl
import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.normalize import _SIMPLE_EMAIL, normalize, normalize_email, normalize_phone
from tests import factories as f


@pytest.mark.parametrize(
    ("raw", "region", "e164", "rule"),
    [
        ("(416) 555-0123", "CA", "+14165550123", None),
        ("+1 416 555 0123", "US", "+14165550123", None),
        ("001-416-555-0123", "US", None, "phone_invalid"),
        ("00 1 416 555 0123", "GB", "+14165550123", None),
        ("416.555.0123", "CA", "+14165550123", None),
        ("07400 123456", "GB", "+447400123456", None),
        ("+977 984-1234567", "NP", "+9779841234567", None),
        ("416-555-0123 x45", "CA", None, "phone_has_extension"),
        ("020 7946 0958", "GB", None, "phone_not_mobile"),
        ("555-01", "US", None, "phone_invalid"),
        ("n/a", "US", None, "phone_unparseable"),
        ("", "US", None, None),
        (None, "US", None, None),
    ],
    ids=[
        "ca-national-with-punctuation",
        "international-form",
        "00-is-not-the-us-idd-prefix",
        "00-is-the-gb-idd-prefix",
        "dots",
        "gb-mobile-national",
        "nepal-mobile",
        "extension",
        "gb-landline",
        "too-short",
        "not-a-number",
        "empty-is-missing-not-invalid",
        "null-is-missing",
    ],
)
def test_normalize_phone(raw, region, e164, rule) -> None:
    got, got_rule, _reason = normalize_phone(raw, region)
    assert (got, got_rule) == (e164, rule)


@given(st.text(max_size=40))
def test_normalize_phone_never_raises_and_returns_e164_or_a_rule(raw) -> None:
    e164, rule, reason = normalize_phone(raw, "US")
    if e164 is not None:
        assert e164.startswith("+")
        assert e164[1:].isdigit()
        assert rule is None
    else:
        assert rule is None or rule.startswith("phone_")
        assert isinstance(reason, str)


@pytest.mark.parametrize(
    ("raw", "expected", "rule"),
    [
        ("  Ana.Silva@Example.COM ", "ana.silva@example.com", None),
        ("bob@", None, "email_invalid"),
        ("no-at-sign.example.com", None, "email_invalid"),
        (None, None, None),
    ],
    ids=["trim-and-lower", "no-domain", "no-at", "missing"],
)
def test_normalize_email(raw, expected, rule) -> None:
    got, got_rule, _ = normalize_email(raw)
    assert (got, got_rule) == (expected, rule)


def test_every_row_is_accepted_or_quarantined_once() -> None:
    good = f.customer()
    dup_old = f.customer(customer_id=good["customer_id"], updated_at="2025-01-01T00:00:00Z")
    rows = [
        good,
        dup_old,
        f.customer(customer_id=None),
        f.customer(country="XX"),
        f.customer(phone="n/a"),
    ]
    invoices = [
        f.invoice(good["customer_id"]),
        f.invoice(good["customer_id"], amount_due="-5"),
        f.invoice(good["customer_id"], amount_due="12,50"),
        f.invoice(good["customer_id"], amount_due="1.234"),
        f.invoice(good["customer_id"], currency="ZZZ"),
        f.invoice(good["customer_id"], due_date="31/12/2026"),
        f.invoice(good["customer_id"], status="weird"),
        f.invoice("nobody"),
        f.invoice(None),
    ]
    ex = f.extracted(rows, invoices)
    n = normalize(ex)
    row_rules = n.quarantine.filter(pl.col("scope") == "row")
    assert n.customers.height + row_rules.filter(pl.col("source") == "customers").height == len(
        rows
    )
    assert n.invoices.height + row_rules.filter(pl.col("source") == "invoices").height == len(
        invoices
    )
    assert sorted(row_rules.filter(pl.col("source") == "customers")["rule"].to_list()) == [
        "country_invalid",
        "customer_id_duplicate",
        "customer_id_missing",
    ]
    assert sorted(row_rules.filter(pl.col("source") == "invoices")["rule"].to_list()) == [
        "amount_invalid",
        "amount_negative",
        "amount_precision",
        "currency_invalid",
        "customer_unknown",
        "customer_unknown",
        "due_date_invalid",
        "status_unknown",
    ]
    kept = n.customers.filter(pl.col("customer_id") == good["customer_id"])
    assert kept["updated_at"].dt.year().to_list() == [2026]
    field = n.quarantine.filter(pl.col("scope") == "field")
    assert field["rule"].to_list() == ["phone_unparseable"]
    assert json.loads(field["raw_values"][0])["phone"] == "n/a"


@pytest.mark.parametrize(
    ("values", "zones", "source"),
    [
        ({"preferred_timezone": "Asia/Kathmandu"}, ["Asia/Kathmandu"], "preferred"),
        ({"preferred_timezone": " America/Toronto "}, ["America/Toronto"], "preferred"),
        ({"preferred_timezone": "US/Eastern"}, ["America/New_York"], "preferred"),
        (
            {"preferred_timezone": "NZ-CHAT", "country": "NZ", "postal_code": "8942"},
            ["Pacific/Chatham"],
            "postal_code",
        ),
        (
            {"preferred_timezone": None, "phone": "+1 808 555 0100", "postal_code": None},
            ["Pacific/Honolulu"],
            "phone",
        ),
        (
            {
                "preferred_timezone": "Mars/Olympus",
                "phone": "+1 709 555 0100",
                "country": "CA",
                "postal_code": None,
            },
            ["America/Halifax", "America/St_Johns"],
            "phone",
        ),
        (
            {"preferred_timezone": None, "phone": None, "country": "NP", "postal_code": None},
            ["Asia/Kathmandu"],
            "country",
        ),
        (
            {"preferred_timezone": None, "phone": None, "country": "NZ", "postal_code": None},
            ["Pacific/Auckland", "Pacific/Chatham"],
            "country",
        ),
    ],
    ids=[
        "preferred",
        "preferred-trimmed",
        "legacy-alias-canonical",
        "single-word-alias-rejected-postal-decides",
        "hawaii-by-area-code",
        "invalid-zone-falls-back-to-709-area-code-two-zones",
        "nepal-by-country",
        "nz-two-candidates",
    ],
)
def test_time_zone_resolution(values, zones, source) -> None:
    n = normalize(f.extracted([f.customer(**values)], []))
    row = n.customers.row(0, named=True)
    assert (row["time_zones"], row["zone_source"]) == (zones, source)


def test_rejected_zone_rule_is_timezone_not_geographic() -> None:
    n = normalize(f.extracted([f.customer(preferred_timezone="Mars/Olympus")], []))
    rules = n.quarantine.filter(pl.col("scope") == "field")["rule"].to_list()
    assert rules == ["timezone_not_geographic"]
    assert "timezone_invalid" not in n.quarantine["rule"].to_list()


@settings(max_examples=300, deadline=None)
@given(st.from_regex(_SIMPLE_EMAIL, fullmatch=True))
def test_email_fast_path_agrees_with_email_validator(address) -> None:
    fast, rule, _ = normalize_email(address)
    if fast is None:
        return
    assert rule is None
    assert validate_email(address, check_deliverability=False).normalized.lower() == fast


@given(st.text(max_size=40))
def test_normalize_email_never_raises(raw) -> None:
    address, rule, _ = normalize_email(raw)
    assert (address is None) or ("@" in address and rule is None)


def test_every_consent_row_is_accepted_or_quarantined_once() -> None:
    c = f.customer()
    cid = c["customer_id"]
    events = [
        f.consent(cid, "sms"),  # accepted
        f.consent(cid, "WhatsApp", "STOP"),  # accepted: unknown channel, still an opt-out
        f.consent(cid, "sms", occurred_at="2027-01-01T00:00:00Z"),  # accepted + field note
        f.consent(cid, None),
        f.consent(cid, "sms", "sometimes"),
        f.consent(cid, "sms", occurred_at="01/02/2026"),
        f.consent("nobody", "sms", "garbage"),
    ]
    n = normalize(f.extracted([c], [], events), as_of=datetime(2026, 11, 23, 6))
    q = n.quarantine.filter(pl.col("source") == "consent_events")
    rows = q.filter(pl.col("scope") == "row")
    assert n.consent_events.height + rows.height == len(events)
    assert n.quarantined_rows("consent_events") == 4
    assert n.consent_events.select("channel", "status", "after_as_of").rows() == [
        ("sms", "opt_in", False),
        ("whatsapp", "opt_out", False),
        ("sms", "opt_in", True),
    ]
    assert rows.select("source_row", "rule").rows() == [
        (3, "channel_unknown"),
        (4, "consent_status_unknown"),
        (5, "occurred_at_invalid"),
        (6, "customer_unknown"),
    ]
    assert q.filter(pl.col("scope") == "field").select("source_row", "rule").rows() == [
        (2, "consent_in_future")
    ]
    assert n.consent_unclear["customer_id"].to_list() == [cid]


def test_an_amount_too_large_for_minor_units_is_quarantined_not_a_crash() -> None:
    from tasks.normalize import _amount_minor

    assert _amount_minor("1" + "0" * 30, "USD") == (None, "amount_invalid")
    assert _amount_minor("92233720368547758.07", "USD") == (9223372036854775807, None)
