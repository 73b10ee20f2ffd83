from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import fields
from datetime import date, timedelta
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.sample_data import SampleData, generate

AS_OF = date(2026, 11, 23)
AS_OF_TS = "2026-11-23T00:00:00Z"
DAY_BEFORE_TS = "2026-11-22T00:00:00Z"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PLAIN_EMAIL = re.compile(r"^[A-Za-z0-9._]+@example\.(com|org|net)$", re.IGNORECASE)
COUNTRIES = {"US", "CA", "GB", "IN", "NP", "AU", "NZ", "DE", "FR", "MX"}


@pytest.fixture(scope="module")
def data() -> SampleData:
    return generate(2000, as_of=AS_OF)


def _phone_verdict(phone: str | None, country: str | None) -> str:
    region = (country or "").strip().upper()
    if phone is None or region not in COUNTRIES:
        return "unusable"
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return "unusable"
    if not phonenumbers.is_valid_number(number):
        return "unusable"
    if phonenumbers.region_code_for_number(number) != region:
        return "other_country"
    return "ok"


def _zone_verdict(zone: str | None) -> str:
    if zone is None:
        return "missing"
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "invalid"
    return "valid"


def _e164(phone: str | None, country: str) -> str | None:
    if _phone_verdict(phone, country) != "ok":
        return None
    number = phonenumbers.parse(phone, country.strip().upper())
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_same_inputs_give_identical_tables(data: SampleData) -> None:
    again = generate(2000, as_of=AS_OF)
    for field in fields(SampleData):
        assert_frame_equal(getattr(data, field.name), getattr(again, field.name))


@pytest.mark.parametrize(
    ("seed", "as_of"),
    [(8, AS_OF), (7, AS_OF + timedelta(days=1))],
    ids=["other-seed", "other-as-of"],
)
def test_other_inputs_give_other_data(data: SampleData, seed: int, as_of: date) -> None:
    other = generate(2000, seed=seed, as_of=as_of)
    assert not other.customers.equals(data.customers)
    assert not other.invoices.equals(data.invoices)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_files_are_byte_identical(tmp_path: Path, fmt: str) -> None:
    first = generate(300, seed=3, as_of=AS_OF).write(tmp_path / "a", fmt)
    second = generate(300, seed=3, as_of=AS_OF).write(tmp_path / "b", fmt)
    assert set(first) == {"customers", "invoices", "consent_events", "contact_history"}
    for table, path in first.items():
        assert path.name == f"{table}.{fmt}"
        assert path.read_bytes() == second[table].read_bytes()


def test_write_rejects_an_unknown_format(tmp_path: Path, data: SampleData) -> None:
    with pytest.raises(ValueError, match="unsupported format"):
        data.write(tmp_path, "xlsx")  # type: ignore[arg-type]


def test_rejects_fewer_than_one_customer() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(0, as_of=AS_OF)


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        (
            "customers",
            [
                "customer_id",
                "full_name",
                "first_name",
                "last_name",
                "phone",
                "email",
                "country",
                "postal_code",
                "preferred_timezone",
                "locale",
                "preferred_channel",
                "updated_at",
            ],
        ),
        (
            "invoices",
            [
                "invoice_id",
                "customer_id",
                "amount_due",
                "currency",
                "due_date",
                "status",
                "paid_at",
                "updated_at",
            ],
        ),
        ("consent_events", ["customer_id", "channel", "status", "source", "occurred_at"]),
        ("contact_history", ["customer_id", "channel", "attempted_at", "outcome", "invoice_id"]),
    ],
    ids=["customers", "invoices", "consent_events", "contact_history"],
)
def test_columns_are_the_canonical_strings(
    data: SampleData, table: str, columns: list[str]
) -> None:
    frame: pl.DataFrame = getattr(data, table)
    assert frame.columns == columns
    assert set(frame.schema.dtypes()) == {pl.String}


def test_customer_count_is_distinct_customers(data: SampleData) -> None:
    ids = data.customers["customer_id"].drop_nulls()
    assert 1990 <= ids.n_unique() <= 2000
    assert data.customers.height > 2000


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("US", "America/New_York"),
        ("US", "America/Chicago"),
        ("US", "America/Denver"),
        ("US", "America/Phoenix"),
        ("US", "America/Los_Angeles"),
        ("US", "Pacific/Honolulu"),
        ("CA", "America/St_Johns"),
        ("CA", "America/Toronto"),
        ("CA", "America/Vancouver"),
        ("GB", "Europe/London"),
        ("IN", "Asia/Kolkata"),
        ("NP", "Asia/Kathmandu"),
        ("AU", "Australia/Lord_Howe"),
        ("AU", "Australia/Sydney"),
        ("AU", "Australia/Perth"),
        ("NZ", "Pacific/Chatham"),
        ("NZ", "Pacific/Auckland"),
        ("DE", "Europe/Berlin"),
        ("FR", "Europe/Paris"),
        ("MX", "America/Mexico_City"),
    ],
    ids=lambda value: value,
)
def test_country_and_zone_present(data: SampleData, country: str, zone: str) -> None:
    rows = data.customers.filter(
        (pl.col("country") == country) & (pl.col("preferred_timezone") == zone)
    )
    assert rows.height > 0


@pytest.mark.parametrize(
    ("country", "pattern"),
    [
        ("US", r"^\d{5}(-\d{4})?$"),
        ("CA", r"^[A-Z]\d[A-Z] \d[A-Z]\d$"),
        ("GB", r"^[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}$"),
        ("IN", r"^\d{6}$"),
        ("NP", r"^\d{5}$"),
        ("AU", r"^\d{4}$"),
        ("NZ", r"^\d{4}$"),
    ],
    ids=["US", "CA", "GB", "IN", "NP", "AU", "NZ"],
)
def test_most_postal_codes_fit_the_country(data: SampleData, country: str, pattern: str) -> None:
    codes = data.customers.filter(pl.col("country") == country)["postal_code"].drop_nulls()
    assert codes.str.contains(pattern).mean() >= 0.9


def test_quebec_customers_have_fr_ca_locale(data: SampleData) -> None:
    quebec = data.customers.filter(pl.col("postal_code").str.contains(r"^[HGJ]\d[A-Z] "))
    assert (quebec["locale"] == "fr_CA").sum() > 0


def test_countries_are_the_listed_ones_or_xx(data: SampleData) -> None:
    countries = set(data.customers["country"].str.strip_chars().str.to_uppercase().to_list())
    assert countries == COUNTRIES | {"XX", None}


def test_clean_international_phones_are_valid_for_the_customer_country(
    data: SampleData,
) -> None:
    territory = "^\\+1(671|684|787|939|340|670|332)555"
    rows = data.customers.filter(
        pl.col("phone").str.starts_with("+")
        & pl.col("country").is_in(sorted(COUNTRIES))
        & ~pl.col("phone").str.contains(territory)
    )
    verdicts = [_phone_verdict(p, c) for p, c in rows.select("phone", "country").iter_rows()]
    assert len(verdicts) > 500
    assert "unusable" not in verdicts
    assert verdicts.count("ok") / len(verdicts) >= 0.97


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(r"^\(\d{3}\) \d{3}-\d{4}$", id="nanp-national"),
        pytest.param(r"^\d{2,5}\.\d{3,4}\.\d{3,4}$", id="dots"),
        pytest.param(r" (x|ext\. )\d+$", id="extension"),
        pytest.param(r"^\+\d{8,15}$", id="e164"),
        pytest.param(r"^0\d+ \d+ \d+$", id="national-with-trunk"),
    ],
)
def test_phone_layouts_present_and_parseable(data: SampleData, pattern: str) -> None:
    rows = data.customers.filter(
        pl.col("phone").str.contains(pattern) & pl.col("country").is_in(sorted(COUNTRIES))
    )
    verdicts = [_phone_verdict(p, c) for p, c in rows.select("phone", "country").iter_rows()]
    assert len(verdicts) >= 5
    assert verdicts.count("ok") / len(verdicts) >= 0.9


def test_unusable_phones_are_about_eight_percent(data: SampleData) -> None:
    verdicts = [
        _phone_verdict(p, c) for p, c in data.customers.select("phone", "country").iter_rows()
    ]
    share = sum(v != "ok" for v in verdicts) / len(verdicts)
    assert 0.06 <= share <= 0.12


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(pl.col("phone").is_null(), id="null"),
        pytest.param(pl.col("phone") == " ", id="blank"),
        pytest.param(~pl.col("phone").str.contains(r"\d") & (pl.col("phone") != " "), id="garbage"),
        pytest.param(pl.col("phone").str.contains(r"^\d{3,4}-\d{2}$"), id="too-short"),
        pytest.param(pl.col("phone").str.contains(r"\d-[A-Z]{2,}"), id="vanity-letters"),
        pytest.param(pl.col("phone").str.starts_with("001-"), id="foreign-exit-code"),
    ],
)
def test_phone_mess_occurs(data: SampleData, predicate: pl.Expr) -> None:
    assert data.customers.filter(predicate).height > 0


def test_valid_phones_of_another_country_occur(data: SampleData) -> None:
    verdicts = [
        _phone_verdict(p, c) for p, c in data.customers.select("phone", "country").iter_rows()
    ]
    assert verdicts.count("other_country") > 0


def test_households_share_a_phone(data: SampleData) -> None:
    numbers = pl.DataFrame(
        {
            "customer_id": data.customers["customer_id"],
            "e164": [_e164(p, c) for p, c in data.customers.select("phone", "country").iter_rows()],
        }
    ).drop_nulls()
    per_number = numbers.unique().group_by("e164").agg(pl.col("customer_id").n_unique())
    assert per_number.filter(pl.col("customer_id") > 1).height >= 10


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(lambda e: not PLAIN_EMAIL.match(e.strip()), id="invalid"),
        pytest.param(lambda e: "@" not in e, id="no-at-sign"),
        pytest.param(lambda e: e.endswith("@"), id="no-domain"),
        pytest.param(lambda e: e != e.strip(), id="padded"),
        pytest.param(lambda e: e != e.lower(), id="mixed-case"),
    ],
)
def test_email_mess_occurs(data: SampleData, predicate: Callable[[str], bool]) -> None:
    emails = data.customers["email"].drop_nulls().to_list()
    assert any(predicate(e) for e in emails)


def test_emails_use_example_domains_only(data: SampleData) -> None:
    emails = data.customers["email"].drop_nulls().str.strip_chars().str.to_lowercase()
    domains = set(emails.str.extract(r"@([a-z.]+)$").drop_nulls().to_list())
    truncated_by_mess = {"e", "example"}
    assert domains <= {"example.com", "example.org", "example.net"} | truncated_by_mess
    invalid = ~emails.str.contains(PLAIN_EMAIL.pattern)
    assert 0.02 <= invalid.mean() <= 0.07
    assert data.customers["email"].null_count() > 0


def test_timezone_shares(data: SampleData) -> None:
    verdicts = pl.Series(
        "verdict", [_zone_verdict(z) for z in data.customers["preferred_timezone"]]
    )
    shares = verdicts.value_counts(normalize=True)
    share = dict(zip(shares["verdict"], shares["proportion"], strict=True))
    assert share["valid"] == pytest.approx(0.60, abs=0.03)
    assert share["missing"] == pytest.approx(0.35, abs=0.03)
    assert share["invalid"] == pytest.approx(0.05, abs=0.02)
    zones = set(data.customers["preferred_timezone"].drop_nulls().to_list())
    assert {"EST5", "Mars/Olympus", "GMT+3", "America/Toronto "} & zones


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(r"[éëÆØøüñóáíÞþ]", id="latin-accents"),
        pytest.param(r"[\u0900-\u097F]", id="devanagari"),
        pytest.param(r"[\u0400-\u04FF]", id="cyrillic"),
        pytest.param(r"[\u4E00-\u9FFF]", id="cjk"),
        pytest.param(r"[\uAC00-\uD7AF]", id="hangul"),
        pytest.param(r"[āēīōūĀĒĪŌŪ]", id="maori-macrons"),
    ],
)
def test_names_in_several_scripts(data: SampleData, pattern: str) -> None:
    names = pl.concat_str(
        [pl.col("full_name"), pl.col("first_name"), pl.col("last_name")],
        separator=" ",
        ignore_nulls=True,
    )
    assert data.customers.select(names.str.contains(pattern).sum()).item() > 0


def test_name_forms(data: SampleData) -> None:
    c = data.customers
    only_full = c.filter(pl.col("first_name").is_null() & pl.col("full_name").is_not_null())
    only_parts = c.filter(pl.col("full_name").is_null() & pl.col("last_name").is_not_null())
    assert only_full.height > 100
    assert only_parts.height > 100


def test_duplicate_customer_rows_are_older_versions(data: SampleData) -> None:
    c = data.customers.filter(pl.col("customer_id").is_not_null())
    dups = c.filter(pl.col("customer_id").is_duplicated())
    assert dups.height >= 10
    versions = dups.group_by("customer_id").agg(
        pl.col("updated_at").first().alias("current"), pl.col("updated_at").last().alias("old")
    )
    assert (versions["old"] <= versions["current"]).all()
    assert (versions["old"] < versions["current"]).mean() > 0.5


LEGACY_ZONES = ["US/Arizona", "US/Hawaii", "US/Eastern", "Canada/Newfoundland", "NZ-CHAT"]


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(pl.col("customer_id").is_null(), id="missing-id"),
        pytest.param(pl.col("country") == "XX", id="unknown-country"),
        pytest.param(
            pl.col("country") != pl.col("country").str.strip_chars().str.to_uppercase(),
            id="messy-country",
        ),
        pytest.param(pl.col("preferred_timezone").is_in(LEGACY_ZONES), id="legacy-zone-alias"),
        pytest.param(pl.col("locale").str.contains("-"), id="hyphen-locale"),
        pytest.param(~pl.col("preferred_channel").is_in(["sms", "email"]), id="messy-channel"),
        pytest.param(
            pl.col("postal_code").str.contains(r"^[a-z]\d[a-z]\d[a-z]\d$"), id="squashed-postal"
        ),
    ],
)
def test_customer_mess_occurs(data: SampleData, predicate: pl.Expr) -> None:
    assert data.customers.filter(predicate).height > 0


def test_timestamps_are_utc_and_before_as_of(data: SampleData) -> None:
    stamps = pl.concat(
        [
            data.customers["updated_at"],
            data.invoices["updated_at"],
            data.invoices["paid_at"].drop_nulls(),
            data.consent_events["occurred_at"],
            data.contact_history["attempted_at"],
        ]
    )
    assert stamps.null_count() == 0
    # traps: unreadable consent times ("yesterday"), future consent events and paid_at
    assert (~stamps.str.contains(TS.pattern)).sum() == (stamps == "yesterday").sum() >= 1
    future = (stamps >= AS_OF_TS) & stamps.str.contains(TS.pattern)
    assert 1 <= future.sum() <= 0.005 * stamps.len()


def test_invoices_per_customer(data: SampleData) -> None:
    counts = data.invoices.group_by("customer_id").len()["len"]
    assert counts.mean() == pytest.approx(1.5, abs=0.1)
    assert data.invoices["invoice_id"].str.contains(r"^INV-\d{6,}$").all()


@pytest.mark.parametrize(
    ("status", "share"),
    [
        pytest.param("open", 0.62, id="open"),  # + trap customers' first invoices
        pytest.param("partially_paid", 0.15, id="partially_paid"),
        pytest.param("paid", 0.15, id="paid"),
        pytest.param("void", 0.05, id="void"),
        pytest.param("disputed", 0.05, id="disputed"),
    ],
)
def test_invoice_status_shares(data: SampleData, status: str, share: float) -> None:
    got = (data.invoices["status"] == status).mean()
    assert got == pytest.approx(share, abs=0.02)


def test_paid_invoices_have_zero_due_and_paid_at(data: SampleData) -> None:
    paid = data.invoices.filter(pl.col("status") == "paid")
    clean = paid.filter(pl.col("amount_due").str.contains(r"^\d+\.\d{2}$"))
    assert (clean["amount_due"] == "0.00").all()
    assert paid["paid_at"].null_count() == 0
    others = data.invoices.filter(pl.col("status").is_in(["open", "partially_paid", "void"]))
    with_paid_at = others.height - others["paid_at"].null_count()
    assert 1 <= with_paid_at <= 0.01 * others.height  # the paid_at traps


def test_currency_follows_country(data: SampleData) -> None:
    joined = data.invoices.join(
        data.customers.unique("customer_id", keep="first"), on="customer_id", how="inner"
    )
    expected = {"US": "USD", "CA": "CAD", "GB": "GBP", "IN": "INR", "NP": "NPR"}
    expected |= {"AU": "AUD", "NZ": "NZD", "DE": "EUR", "FR": "EUR", "MX": "MXN"}
    shared = data.invoices.group_by("invoice_id").agg(pl.col("customer_id").n_unique() > 1)
    shared_ids = shared.filter(pl.col("customer_id"))["invoice_id"]
    rows = joined.filter(
        pl.col("country").is_in(list(expected))
        & (pl.col("currency") != "ZZZ")
        & ~pl.col("invoice_id").is_in(shared_ids.implode())
    )
    wanted = rows["country"].replace_strict(expected, return_dtype=pl.String)
    assert (rows["currency"] == wanted).all()


@pytest.mark.parametrize("offset", [7, 1, -3, -7], ids=["T-7", "T-1", "T+3", "T+7"])
def test_due_dates_hit_cadence_steps(data: SampleData, offset: int) -> None:
    due = (AS_OF + timedelta(days=offset)).isoformat()
    assert (data.invoices["due_date"] == due).mean() >= 0.07


def test_demo_size_has_a_few_hundred_reminder_candidates() -> None:
    demo = generate(1000, as_of=AS_OF)
    steps = [(AS_OF + timedelta(days=d)).isoformat() for d in (7, 1, -3, -7)]
    candidates = demo.invoices.filter(
        pl.col("status").is_in(["open", "partially_paid"]) & pl.col("due_date").is_in(steps)
    )
    assert 200 <= candidates.height <= 600


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(pl.col("amount_due").str.starts_with("-"), id="negative-amount"),
        pytest.param(pl.col("amount_due").str.contains(r"^\d+,\d{2}$"), id="comma-amount"),
        pytest.param(pl.col("amount_due") == "abc", id="non-numeric-amount"),
        pytest.param(pl.col("currency") == "ZZZ", id="unknown-currency"),
        pytest.param(
            pl.col("due_date").str.contains(r"^\d{2}/\d{2}/\d{4}$"), id="day-first-due-date"
        ),
        pytest.param(pl.col("due_date").is_null(), id="missing-due-date"),
        pytest.param(pl.col("status") == "weird", id="unknown-status"),
        pytest.param(pl.col("invoice_id").is_duplicated(), id="duplicate-invoice-id"),
    ],
)
def test_invoice_mess_occurs(data: SampleData, predicate: pl.Expr) -> None:
    assert data.invoices.filter(predicate).height > 0


def test_bad_invoice_rows_are_about_one_percent(data: SampleData) -> None:
    inv = data.invoices
    bad = inv.filter(
        ~pl.col("amount_due").str.contains(r"^\d+\.\d{2}$")
        | (pl.col("currency") == "ZZZ")
        | ~pl.col("due_date").str.contains(r"^\d{4}-\d{2}-\d{2}$").fill_null(False)
        | (pl.col("status") == "weird")
    )
    assert 0.004 <= bad.height / inv.height <= 0.02


def test_some_invoices_belong_to_unknown_customers(data: SampleData) -> None:
    known = data.customers["customer_id"].drop_nulls()
    orphans = data.invoices.filter(~pl.col("customer_id").is_in(known))
    assert orphans.height > 0


def test_consent_conflict_at_the_same_timestamp(data: SampleData) -> None:
    pairs = data.consent_events.group_by("customer_id", "channel", "occurred_at").agg(
        pl.col("status").n_unique().alias("statuses")
    )
    assert pairs.filter(pl.col("statuses") > 1).height > 0


def test_consent_restart_written_before_the_stop(data: SampleData) -> None:
    keyword = data.consent_events.filter(pl.col("source") == "inbound_keyword").with_row_index()
    starts = keyword.filter(pl.col("status") == "opt_in")
    stops = keyword.filter(pl.col("status") == "opt_out")
    pairs = starts.join(stops, on="customer_id", suffix="_stop")
    out_of_order = pairs.filter(
        (pl.col("index") < pl.col("index_stop"))
        & (pl.col("occurred_at") > pl.col("occurred_at_stop"))
    )
    assert out_of_order.height > 0


@pytest.mark.parametrize(
    ("channel", "status", "source"),
    [
        pytest.param("sms", "opt_out", "inbound_keyword", id="sms-stop-keyword"),
        pytest.param("sms", "opt_in", "inbound_keyword", id="sms-start-keyword"),
        pytest.param("sms", "opt_out", "crm", id="sms-opt-out-crm"),
        pytest.param("email", "opt_out", "web_form", id="email-opt-out"),
        pytest.param("all", "opt_out", "agent", id="global-opt-out"),
        pytest.param("all", "opt_in", "crm", id="global-opt-in"),
    ],
)
def test_consent_kinds_occur(data: SampleData, channel: str, status: str, source: str) -> None:
    events = data.consent_events.filter(
        (pl.col("channel") == channel) & (pl.col("status") == status) & (pl.col("source") == source)
    )
    assert events.height > 0


def test_consent_shares(data: SampleData) -> None:
    customers = data.customers["customer_id"].drop_nulls().unique()
    events = data.consent_events
    with_sms = events.filter(pl.col("channel").is_in(["sms", "all"]))["customer_id"].unique()
    opted_out = events.filter(pl.col("status") == "opt_out")["customer_id"].unique()
    assert 1 - with_sms.len() / customers.len() == pytest.approx(0.10, abs=0.02)
    assert opted_out.len() / customers.len() == pytest.approx(0.07, abs=0.02)
    assert set(events["source"].unique()) == {"web_form", "crm", "inbound_keyword", "agent"}


def test_contact_history_recent_attempts(data: SampleData) -> None:
    history = data.contact_history
    last_day = history.filter(pl.col("attempted_at") >= DAY_BEFORE_TS)
    last_three = history.filter(pl.col("attempted_at") >= "2026-11-20T00:00:00Z")
    customers = data.customers["customer_id"].drop_nulls().n_unique()
    assert last_day.height > 0
    assert last_three["customer_id"].n_unique() / customers == pytest.approx(0.10, abs=0.02)
    assert set(history["outcome"].drop_nulls().unique()) == {"delivered", "failed", "no_answer"}


# ---------------------------------------------------------------- issue 7 traps


def test_non_geographic_and_legacy_zones_occur(data: SampleData) -> None:
    zones = set(data.customers["preferred_timezone"].drop_nulls())
    wanted = {"UTC", "GMT", "Etc/GMT+5", "EST", "+05:30", "Eastern Standard Time"}
    wanted |= {"America/New_Yrok", "asia/kolkata", "Japan", "Zulu"}
    wanted |= {"Asia/Calcutta", "US/Eastern", "America/Buenos_Aires"}
    assert wanted <= zones


@pytest.mark.parametrize(
    ("area", "zip_pattern"),
    [
        ("671", r"^969[1-3]"),
        ("684", r"^96799"),
        ("787|939", r"^0{0,2}(6|7|9)\d\d"),
        ("340", r"^0{0,2}8[0-5]\d"),
        ("670", r"^9695"),
    ],
    ids=["guam", "american-samoa", "puerto-rico", "usvi", "northern-marianas"],
)
def test_us_territories_billed_under_us(data: SampleData, area: str, zip_pattern: str) -> None:
    us = data.customers.filter(pl.col("country") == "US")
    by_phone = us.filter(pl.col("phone").str.contains(f"^\\+1({area})555"))
    assert by_phone.height >= 1
    assert us["postal_code"].drop_nulls().str.contains(zip_pattern).any()


def test_zip_variants_of_territories(data: SampleData) -> None:
    codes = data.customers.filter(pl.col("country") == "US")["postal_code"].drop_nulls()
    every = data.customers["postal_code"].drop_nulls()
    assert every.str.contains(r"^\d{3,4}$").any()  # lost leading zeros
    assert codes.str.contains(r"^\d{5}-\d{4}$").any()


def test_consent_traps_occur(data: SampleData) -> None:
    ev = data.consent_events
    statuses = set(ev["status"].drop_nulls())
    assert {"opt-out", "OPT OUT", "optout", "unsubscribe", "stop", "revoked"} <= statuses
    assert {"opt-in", "subscribe", "start", "yes", "maybe"} <= statuses
    assert ev["status"].null_count() >= 1
    channels = ev["channel"]
    assert {"whatsapp", "voice", "push", "Text Message"} <= set(channels.drop_nulls())
    assert channels.null_count() >= 1
    assert (channels == " ").any()
    assert (ev["occurred_at"] == "yesterday").any()
    future = ev.filter(
        pl.col("occurred_at").str.contains("^2") & (pl.col("occurred_at") > AS_OF_TS)
    )
    assert set(future["status"]) == {"opt_in", "opt_out"}


def test_invoice_traps_occur(data: SampleData) -> None:
    inv = data.invoices
    amounts = set(inv["amount_due"].drop_nulls())
    assert {"1e30", "1E3", "1,234.50", "1.234,50", "1_000", "١٢٣", "NaN", "Infinity"} <= amounts
    assert {"2000000", "  12.50 "} <= amounts
    due = inv["due_date"].drop_nulls()
    assert due.str.contains(r"^\d{4}-\d{1,2}-\d{1,2}$").any()
    assert due.str.contains(r"^\d{2}-\d{2}-\d{2}$").any()
    owners = inv.group_by("invoice_id").agg(pl.col("customer_id").n_unique().alias("n"))
    assert (owners["n"] > 1).any()
    ties = inv.group_by("invoice_id", "updated_at").agg(pl.col("amount_due").n_unique().alias("n"))
    assert (ties["n"] > 1).any()
    open_paid = inv.filter(
        pl.col("status").is_in(["open", "partially_paid"]) & pl.col("paid_at").is_not_null()
    )
    assert (open_paid["paid_at"] < AS_OF_TS).any()
    assert (open_paid["paid_at"] > AS_OF_TS).any()


def test_contact_history_has_invoice_ids_and_maxed_invoices(data: SampleData) -> None:
    ch = data.contact_history
    share = ch["invoice_id"].is_not_null().mean()
    assert 0.2 <= share <= 0.6
    known = set(data.invoices["invoice_id"].drop_nulls())
    assert set(ch["invoice_id"].drop_nulls()) <= known
    per_invoice = (
        ch.filter(pl.col("attempted_at") < DAY_BEFORE_TS)
        .group_by("customer_id", "invoice_id")
        .len()
    )
    assert (per_invoice.filter(pl.col("invoice_id").is_not_null())["len"] >= 3).any()


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 else d
    return total % 10 == 0


def test_disguised_pans_in_names(data: SampleData) -> None:
    names = data.customers["full_name"].drop_nulls().to_list()
    names += data.customers["first_name"].drop_nulls().to_list()
    found = set()
    for name in names:
        folded = "".join(
            str(unicodedata.decimal(c)) for c in name if unicodedata.decimal(c, None) is not None
        )
        if len(folded) >= 13 and any(
            _luhn(folded[i : i + n]) for n in range(13, 20) for i in range(len(folded) - n + 1)
        ):
            found.add(name)
    assert len(found) >= 8
    joined = "".join(found)
    for marker in ("\u00a0", "\u200d", "４", "٥", "12/28", ". "):
        assert marker in joined, marker


def test_customer_traps_occur(data: SampleData) -> None:
    c = data.customers
    assert c["country"].null_count() >= 1
    lengths = pl.concat([c[col].drop_nulls().str.len_chars() for col in c.columns])
    assert lengths.max() > 1000
    ties = c.group_by("customer_id", "updated_at").agg(pl.len(), pl.col("email").n_unique())
    assert ties.filter((pl.col("len") > 1) & (pl.col("email") > 1)).height >= 1


def test_customers_csv_has_undecodable_rows(tmp_path: Path) -> None:
    path = generate(300, seed=3, as_of=AS_OF).write(tmp_path, "csv")["customers"]
    lines = path.read_bytes().split(b"\n")
    bad = []
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(line)
    assert 1 <= len(bad) <= 2
    assert all(b"\xe9" in line for line in bad)
