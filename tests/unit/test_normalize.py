import json
import re
from datetime import date, datetime
from decimal import Decimal

import polars as pl
import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.normalize import _SIMPLE_EMAIL, normalize, normalize_email, normalize_phone
from tasks.settings import ParsingSettings
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
        ("İpek.ǅ@Example.COM", "İpek.ǅ@example.com", None),
        ("José@ÉXAMPLE.com", "josé@éxample.com", None),
        ("bob@", None, "email_invalid"),
        ("no-at-sign.example.com", None, "email_invalid"),
        (None, None, None),
    ],
    ids=[
        "trim-and-lower",
        "non-ascii-local-part-letters-kept",
        "idn-domain-lowered",
        "no-domain",
        "no-at",
        "missing",
    ],
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


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.text(alphabet='ab1 .-_"\t\x1c\u00a0\u3000é(),;:[]\\', max_size=20),
            st.none(),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_emails_without_an_at_sign_read_without_python_as_normalize_email_reads_them(
    values,
) -> None:
    from tasks.normalize import _NO_AT, _email_without_at

    flagged = pl.DataFrame({"e": values}, schema={"e": pl.String}).select(
        _email_without_at(pl.col("e"))
    )
    for value, no_at in zip(values, flagged["_no_at"], strict=True):
        if no_at:
            assert normalize_email(value) == _NO_AT


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


# ---------------------------------------------------------------- issue 7: hostile inputs


def _invoice_rules(invoices, *, customers=None, parsing=None):
    """(accepted invoice frame, {source_row: (rule, reason)}) for invoice dicts."""
    customers = customers if customers is not None else [f.customer(customer_id="C1")]
    n = normalize(f.extracted(customers, invoices), parsing=parsing)
    q = n.quarantine.filter((pl.col("source") == "invoices") & (pl.col("scope") == "row"))
    assert n.invoices.height + q.height == len(invoices)
    return n.invoices, {
        r: (rule, reason)
        for r, rule, reason in q.select("source_row", "rule", "reason").iter_rows()
    }


@pytest.mark.parametrize(
    ("currency", "as_of", "rule"),
    [
        ("HRK", datetime(2026, 11, 23, 6), "currency_invalid"),
        ("HRK", datetime(2020, 1, 1, 6), None),
        ("DEM", datetime(2026, 11, 23, 6), "currency_invalid"),
        ("XXX", datetime(2026, 11, 23, 6), "currency_invalid"),
        ("XTS", datetime(2026, 11, 23, 6), "currency_invalid"),
        ("XAU", datetime(2026, 11, 23, 6), "currency_invalid"),
        ("CLF", datetime(2026, 11, 23, 6), None),
        ("kwd", datetime(2026, 11, 23, 6), None),
    ],
    ids=[
        "kuna-withdrawn-2023",
        "kuna-in-2020",
        "mark-withdrawn",
        "no-currency",
        "testing-code",
        "gold",
        "chilean-uf-not-tender-but-billed-in",
        "dinar-lower-case",
    ],
)
def test_currency_must_be_in_use_on_the_run_date(currency, as_of, rule) -> None:
    extracted = f.extracted([f.customer(customer_id="C1")], [f.invoice("C1", currency=currency)])
    q = normalize(extracted, as_of=as_of).quarantine.filter(pl.col("source") == "invoices")
    assert (q["rule"].to_list() or [None])[0] == rule
    if rule is not None:
        assert f"currency {currency} is not in use" in q["reason"][0]


def test_same_invoice_id_under_two_customers_quarantines_every_row() -> None:
    customers = [f.customer(customer_id="C1"), f.customer(customer_id="C2")]
    rows = [
        f.invoice("C1", invoice_id="INV-1"),
        f.invoice("C2", invoice_id="INV-1", amount_due="999.00"),
        f.invoice("C1", invoice_id="INV-1", updated_at="2026-11-05T00:00:00Z"),
        f.invoice("C2", invoice_id="INV-2"),
    ]
    accepted, rules = _invoice_rules(rows, customers=customers)
    assert accepted["invoice_id"].to_list() == ["INV-2"]
    assert {r: rule for r, (rule, _) in rules.items()} == dict.fromkeys(
        [0, 1, 2], "invoice_id_conflict"
    )
    assert "2 different customer_ids" in rules[0][1]


def test_invoice_owners_lists_the_first_five_owner_ids_of_a_shared_invoice() -> None:
    from tasks.normalize import invoice_owners

    owners = ["C7", " C3", "C9", "C1", "C3", "C5", "C8", "C2"]
    raw = pl.DataFrame(
        {
            "invoice_id": ["SHARED"] * len(owners) + [" SOLO", "SOLO", "PAIR", "PAIR", None, ""],
            "customer_id": [*owners, "C4", "C4 ", "C6", "C2", "C1", "C1"],
        }
    )
    table = {i: (n, ids) for i, n, ids in invoice_owners(raw).iter_rows()}
    distinct = sorted({o.strip() for o in owners})
    assert table == {
        "SHARED": (len(distinct), ", ".join(distinct[:5])),
        "SOLO": (1, "C4"),
        "PAIR": (2, "C2, C6"),
    }


def test_latest_updated_at_wins_whatever_the_file_order() -> None:
    old = f.invoice("C1", invoice_id="INV-1", amount_due="10.00", updated_at="2026-11-01T00:00:00Z")
    new = f.invoice("C1", invoice_id="INV-1", amount_due="20.00", updated_at="2026-11-02T00:00:00Z")
    for rows, old_row in (([old, new], 0), ([new, old], 1)):
        accepted, rules = _invoice_rules(rows)
        assert accepted["amount_due_minor"].to_list() == [2000]
        assert rules[old_row][0] == "invoice_id_duplicate"
        assert "later updated_at" in rules[old_row][1]


def test_equal_latest_updated_at_with_different_content_is_a_version_conflict() -> None:
    ts = "2026-11-02T00:00:00Z"
    rows = [
        f.invoice("C1", invoice_id="INV-1", amount_due="10.00", updated_at="2026-11-01T00:00:00Z"),
        f.invoice("C1", invoice_id="INV-1", amount_due="20.00", updated_at=ts),
        f.invoice("C1", invoice_id="INV-1", amount_due="30.00", updated_at=ts),
    ]
    accepted, rules = _invoice_rules(rows)
    assert accepted.height == 0
    assert [rules[i][0] for i in range(3)] == ["invoice_version_conflict"] * 3


def test_equal_latest_updated_at_with_identical_content_keeps_one() -> None:
    row = f.invoice("C1", invoice_id="INV-1", amount_due="20.00")
    same_instant = row | {"updated_at": "2026-11-01T01:00:00+01:00"}  # the same UTC instant
    accepted, rules = _invoice_rules([row, same_instant, dict(row)])
    assert accepted.height == 1
    assert sorted(rule for rule, _ in rules.values()) == ["invoice_id_duplicate"] * 2
    assert all("identical" in reason for _, reason in rules.values())


@pytest.mark.parametrize(
    ("undated_amount", "expected"),
    [("99.00", "invoice_version_conflict"), ("20.00", "invoice_id_duplicate")],
    ids=["undated-differs-conflict", "undated-equals-latest-kept-once"],
)
def test_undated_invoice_version_cannot_be_ordered(undated_amount, expected) -> None:
    rows = [
        f.invoice("C1", invoice_id="INV-1", amount_due="20.00", updated_at="2026-11-02T00:00:00Z"),
        f.invoice("C1", invoice_id="INV-1", amount_due=undated_amount, updated_at="last week"),
    ]
    accepted, rules = _invoice_rules(rows)
    assert rules[1][0] == expected
    if expected == "invoice_version_conflict":
        assert accepted.height == 0
        assert rules[0][0] == expected
    else:
        assert accepted["updated_at"].dt.day().to_list() == [2]


@pytest.mark.parametrize(
    ("paid_at", "rule"),
    [
        ("2026-11-20T10:00:00Z", None),
        (None, None),
        ("   ", None),
        ("yesterday", "paid_at_invalid"),
        ("2026-13-01T00:00:00Z", "paid_at_invalid"),
    ],
    ids=["timestamp", "null", "blank-is-missing", "words", "month-13"],
)
def test_unparseable_paid_at_is_quarantined(paid_at, rule) -> None:
    _accepted, rules = _invoice_rules([f.invoice("C1", paid_at=paid_at)])
    assert (rules[0][0] if rules else None) == rule


@pytest.mark.parametrize(
    ("column", "value", "rule", "reason_part"),
    [
        ("currency", None, "currency_invalid", "empty"),
        ("currency", "  ", "currency_invalid", "ISO 4217"),
        ("status", None, "status_unknown", "not one of"),
        ("status", " ", "status_unknown", "not one of"),
    ],
    ids=["null-currency", "blank-currency", "null-status", "blank-status"],
)
def test_empty_currency_or_status_is_quarantined(column, value, rule, reason_part) -> None:
    # An empty CSV cell or a SQL NULL reaches normalize as null, not as "".
    _accepted, rules = _invoice_rules([f.invoice("C1", **{column: value})])
    assert rules[0][0] == rule
    assert reason_part in rules[0][1]


@pytest.mark.parametrize(
    ("due_date", "formats", "expected"),
    [
        ("2026-11-24", None, date(2026, 11, 24)),
        (" 2026-11-24 ", None, date(2026, 11, 24)),
        ("2026-3-1", None, None),
        ("26-11-24", None, None),
        ("2026-02-30", None, None),
        ("2026-11-24T00:00:00", None, None),
        ("24/11/2026", None, None),
        ("24/11/2026", ["%Y-%m-%d", "%d/%m/%Y"], date(2026, 11, 24)),
        ("2026-11-24", ["%Y-%m-%d", "%d/%m/%Y"], date(2026, 11, 24)),
        ("4/11/2026", ["%d/%m/%Y"], None),
    ],
    ids=[
        "iso",
        "trimmed",
        "unpadded-month-day",
        "two-digit-year",
        "no-such-day",
        "timestamp-is-not-a-date",
        "other-format-not-configured",
        "second-format",
        "first-format",
        "unpadded-day-second-format",
    ],
)
def test_due_dates_are_strict(due_date, formats, expected) -> None:
    parsing = ParsingSettings(due_date_formats=formats) if formats else None
    accepted, rules = _invoice_rules([f.invoice("C1", due_date=due_date)], parsing=parsing)
    if expected is None:
        rule, reason = rules[0]
        assert rule == "due_date_invalid"
        for fmt in formats or ["%Y-%m-%d"]:
            assert fmt in reason
    else:
        assert accepted["due_date"].to_list() == [expected]


AMOUNTS = [
    ("120.00", "USD", 12000, None, None),
    (" 12.5\t", "USD", 1250, None, None),
    ("+3", "USD", 300, None, None),
    ("0", "USD", 0, None, None),
    ("1000000", "USD", 100000000, None, None),
    ("1500", "JPY", 1500, None, None),
    ("1.234", "KWD", 1234, None, None),
    ("1e30", "USD", None, "amount_invalid", "exponent"),
    ("1e12", "USD", None, "amount_invalid", "exponent"),
    ("1E-3", "USD", None, "amount_invalid", "exponent"),
    ("1,234.50", "USD", None, "amount_invalid", "separators"),
    ("1.234,50", "EUR", None, "amount_invalid", "separators"),
    ("12,50", "EUR", None, "amount_invalid", "separators"),
    ("1 234", "USD", None, "amount_invalid", "separators"),
    ("1'234", "CHF", None, "amount_invalid", "separators"),
    ("1_000", "USD", None, "amount_invalid", "underscores"),
    ("\u0661\u0662\u0663", "USD", None, "amount_invalid", "non-ASCII digits"),
    ("\uff11\uff12", "USD", None, "amount_invalid", "non-ASCII digits"),
    ("NaN", "USD", None, "amount_invalid", "finite"),
    ("-Infinity", "USD", None, "amount_invalid", "finite"),
    ("inf", "USD", None, "amount_invalid", "finite"),
    ("", "USD", None, "amount_invalid", "empty"),
    ("  ", "USD", None, "amount_invalid", "empty"),
    (None, "USD", None, "amount_invalid", "empty"),
    ("abc", "USD", None, "amount_invalid", "plain decimal"),
    (".5", "USD", None, "amount_invalid", "plain decimal"),
    ("5.", "USD", None, "amount_invalid", "plain decimal"),
    ("0x10", "USD", None, "amount_invalid", "plain decimal"),
    ("\u00a012.00", "USD", None, "amount_invalid", "plain decimal"),
    ("-5", "USD", None, "amount_negative", "negative"),
    ("-0.01", "USD", None, "amount_negative", "negative"),
    ("1.234", "USD", None, "amount_precision", "decimals"),
    ("1.5", "JPY", None, "amount_precision", "decimals"),
    ("1000000.01", "USD", None, "amount_too_large", "largest"),
    ("9" * 40, "USD", None, "amount_too_large", "largest"),
]


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "rule", "reason_part"),
    AMOUNTS,
    ids=[f"{a!r}-{c}" for a, c, *_ in AMOUNTS],
)
def test_amounts_are_plain_decimals(amount, currency, minor, rule, reason_part) -> None:
    accepted, rules = _invoice_rules([f.invoice("C1", amount_due=amount, currency=currency)])
    if rule is None:
        assert not rules
        assert accepted["amount_due_minor"].to_list() == [minor]
    else:
        got_rule, reason = rules[0]
        assert got_rule == rule
        assert reason_part in reason


def test_max_amount_is_configurable() -> None:
    parsing = ParsingSettings(max_amount=Decimal("100"))
    rows = [f.invoice("C1", amount_due="100.00"), f.invoice("C1", amount_due="100.01")]
    accepted, rules = _invoice_rules(rows, parsing=parsing)
    assert accepted["amount_due_minor"].to_list() == [10000]
    assert rules[1][0] == "amount_too_large"


_PLAIN = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.none()), min_size=1, max_size=8))
def test_any_amount_text_is_accepted_or_quarantined_never_a_crash(amounts) -> None:
    rows = [f.invoice("C1", amount_due=a) for a in amounts]
    accepted, rules = _invoice_rules(rows)
    for row in accepted.iter_rows(named=True):
        raw = amounts[row["source_row"]]
        assert _PLAIN.fullmatch(raw.strip(" \t\n\r\x0b\x0c"))
        assert row["amount_due_minor"] == Decimal(raw.strip(" \t\n\r\x0b\x0c")) * 100
    for rule, _ in rules.values():
        assert rule in {"amount_invalid", "amount_negative", "amount_precision", "amount_too_large"}


# ---- customers


def _customer_rules(customers, *, parsing=None):
    n = normalize(f.extracted(customers, []), parsing=parsing)
    q = n.quarantine.filter((pl.col("source") == "customers") & (pl.col("scope") == "row"))
    assert n.customers.height + q.height == len(customers)
    return n.customers, {
        r: (rule, reason)
        for r, rule, reason in q.select("source_row", "rule", "reason").iter_rows()
    }


@pytest.mark.parametrize(
    ("country", "rule"),
    [
        (None, "country_missing"),
        ("  ", "country_missing"),
        ("XX", "country_invalid"),
        ("USA", "country_invalid"),
        (" us ", None),
    ],
    ids=["null", "blank", "unknown-code", "alpha-3", "trimmed-lower-case-ok"],
)
def test_missing_or_unknown_country_is_quarantined(country, rule) -> None:
    accepted, rules = _customer_rules([f.customer(country=country)])
    assert (rules[0][0] if rules else None) == rule
    if rule is None:
        assert accepted["country"].to_list() == ["US"]


def test_latest_valid_customer_updated_at_wins_over_an_undated_row() -> None:
    dated = f.customer(customer_id="C1", full_name="New Name")
    undated = f.customer(customer_id="C1", full_name="Other Name", updated_at="soon")
    for rows in ([dated, undated], [undated, dated]):
        accepted, rules = _customer_rules(rows)
        assert accepted["full_name"].to_list() == ["New Name"]
        assert [rule for rule, _ in rules.values()] == ["customer_id_duplicate"]


def test_customer_rows_tied_on_updated_at_with_different_content_conflict() -> None:
    a = f.customer(customer_id="C1", phone="+1 212 555 0143")
    b = f.customer(customer_id="C1", phone="+1 212 555 0199")
    older = f.customer(customer_id="C1", updated_at="2026-01-01T00:00:00Z")
    accepted, rules = _customer_rules([a, b, older])
    assert accepted.height == 0
    assert [rules[i][0] for i in range(3)] == ["customer_id_conflict"] * 3
    assert "differ" in rules[0][1]


def test_identical_customer_rows_keep_one() -> None:
    a = f.customer(customer_id="C1")
    accepted, rules = _customer_rules([a, dict(a), a | {"email": " Ana.Silva@Example.com "}])
    assert accepted.height == 1
    assert [rule for rule, _ in rules.values()] == ["customer_id_duplicate"] * 2


# ---- field length, on every source


def test_overlong_fields_are_quarantined_on_every_source_with_cut_raw_values() -> None:
    huge = "x" * 50_000
    c = f.customer(customer_id="C1")
    customers = [c, f.customer(full_name=huge)]
    invoices = [f.invoice("C1"), f.invoice("C1", status=huge)]
    consent = [f.consent("C1", "sms"), f.consent("C1", "sms", source=huge)]
    history = [
        f.contact("C1", "2026-11-01T00:00:00Z"),
        f.contact("C1", "2026-11-01T00:00:00Z", outcome=huge),
    ]
    n = normalize(f.extracted(customers, invoices, consent, history))
    rows = n.quarantine.filter(pl.col("scope") == "row")
    expected_column = {
        "customers": "full_name",
        "invoices": "status",
        "consent_events": "source",
        "contact_history": "outcome",
    }
    for source, column in expected_column.items():
        q = rows.filter(pl.col("source") == source)
        assert q["rule"].to_list() == ["field_too_long"], source
        assert q["source_row"].to_list() == [1]
        assert column in q["reason"][0]
        assert "50000" in q["reason"][0]
        stored = json.loads(q["raw_values"][0])[column]
        assert len(stored) < 1100
        assert stored.startswith("x" * 1000)
    assert n.customers.height == n.invoices.height == n.consent_events.height == 1
    assert n.contact_history.height == 1


def test_max_field_length_is_configurable() -> None:
    parsing = ParsingSettings(max_field_length=30)  # the factory's longest value has 21
    accepted, rules = _customer_rules(
        [f.customer(postal_code="1" * 31), f.customer(postal_code="1" * 30)], parsing=parsing
    )
    assert accepted["postal_code"].to_list() == ["1" * 30]
    assert rules[0][0] == "field_too_long"
    assert "postal_code is 31 characters" in rules[0][1]


def test_hostile_mixture_accounts_for_every_row_per_source() -> None:
    c1, c2 = f.customer(customer_id="C1"), f.customer(customer_id="C2")
    customers = [c1, c2, f.customer(country=None), dict(c2), f.customer(customer_id=" ")]
    invoices = [
        f.invoice("C1", invoice_id="A"),
        f.invoice("C2", invoice_id="A"),
        f.invoice("C1", amount_due="1e30"),
        f.invoice("C1", due_date="2026-3-1"),
        f.invoice("C1", paid_at="never"),
        f.invoice("C1", invoice_id="B"),
        f.invoice("C1", invoice_id="B", amount_due="1.00"),
    ]
    n = normalize(f.extracted(customers, invoices))
    rows = n.quarantine.filter(pl.col("scope") == "row")
    assert n.customers.height + rows.filter(pl.col("source") == "customers").height == 5
    assert n.invoices.height + rows.filter(pl.col("source") == "invoices").height == 7
    assert n.customers["customer_id"].sort().to_list() == ["C1", "C2"]
    assert n.invoices.height == 0


@pytest.mark.parametrize("max_amount", [Decimal(1_000_000), Decimal("1234.565"), Decimal("1e30")])
def test_plain_amounts_in_polars_agree_with_decimal(max_amount) -> None:
    """The vectorised plain-decimal path gives Decimal's answer (_plain_amount) for every value:
    signs, zeros, leading / trailing zeros, precision, the limit, 15 / 16 / 19 integer digits."""
    from babel.numbers import get_currency_precision

    from tasks.normalize import _plain_amount, parse_amounts

    values = [
        "0", "-0", "+0", "-0.000", "-0.001", "00012.50", "12.5000", "12.345", "12.3450",
        "1234.56", "1234.565", "1234.5651", "1234.57", "999999.99", "1000000", "1000000.00",
        "1000000.001", "1000000.01", "+7", "-7", "123456789012345", "1234567890123456",
        "9223372036854775807", "92233720368547758.07", "000000000000000000001.5",
    ]  # fmt: skip
    currencies = ["USD", "JPY", "KWD", "CLF", None]
    frame = pl.DataFrame(
        [(v, c) for v in values for c in currencies], schema=["a", "c"], orient="row"
    )
    got = parse_amounts(pl.col("a"), pl.col("c"), frame, max_amount=max_amount)
    for (value, cur), minor, rule in zip(
        frame.iter_rows(), got["_amount_minor"], got["_amount_rule"], strict=True
    ):
        digits = get_currency_precision(cur) if cur else 2
        assert (minor, rule) == _plain_amount(value, digits, max_amount), (value, cur)
