"""Phone cache and parallel parsing (tasks.phones), and the vectorised message key."""

from __future__ import annotations

import hashlib
from datetime import date

import phonenumbers as pn
import polars as pl
import pytest

import tasks.phones as phones
from tasks.eligibility import message_key, sha256_hex32
from tasks.normalize import normalize_customers
from tasks.phones import PHONE_CACHE_SCHEMA, lookup_phones, parse_phone, parse_phone_values


def _example(region: str, kind: int) -> str:
    number = pn.example_number_for_type(region, kind)
    assert number is not None
    return pn.format_number(number, pn.PhoneNumberFormat.INTERNATIONAL)


def test_fixed_line_outside_nanp_is_not_mobile_with_its_type() -> None:
    e164, rule, reason, _zones, code, line, kind = parse_phone(
        _example("GB", pn.PhoneNumberType.FIXED_LINE), "GB"
    )
    assert (e164, rule, kind, code) == (None, "phone_not_mobile", "fixed_line", 44)
    assert line is not None
    assert line.startswith("+44")
    assert "fixed_line" in reason


def test_mobile_outside_nanp_is_eligible() -> None:
    raw = _example("GB", pn.PhoneNumberType.MOBILE)
    e164, rule, _reason, _zones, _code, _line, kind = parse_phone(raw, "GB")
    assert rule is None
    assert kind == "mobile"
    assert e164 == pn.format_number(pn.parse(raw, "GB"), pn.PhoneNumberFormat.E164)


@pytest.mark.parametrize("region", ["US", "CA", "AS", "PR"])
@pytest.mark.parametrize("kind", [pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE])
def test_plus_one_numbers_are_fixed_or_mobile_and_stay_eligible(region: str, kind: int) -> None:
    number = pn.example_number_for_type(region, kind)
    if number is None:
        pytest.skip(f"no example {kind} number for {region}")
    raw = pn.format_number(number, pn.PhoneNumberFormat.E164)
    e164, rule, _reason, _zones, code, _line, label = parse_phone(raw, region)
    assert code == 1
    assert (e164, rule, label) == (raw, None, "fixed_or_mobile")


def test_plus_one_toll_free_is_still_not_treated_as_mobile() -> None:
    raw = _example("US", pn.PhoneNumberType.TOLL_FREE)
    _e164, _rule, _reason, _zones, _code, _line, label = parse_phone(raw, "US")
    assert label == "toll_free"


def test_blank_and_garbage() -> None:
    assert parse_phone(None, "US")[1] is None
    assert parse_phone("   ", "US")[1] is None
    assert parse_phone("hello", "US")[1] == "phone_unparseable"


def _pairs(n: int) -> pl.DataFrame:
    raws = [f"+1 212 555 {i:04d}" for i in range(n // 2)] + [
        f"07700 9{i:05d}" for i in range(n - n // 2)
    ]
    regions = ["US"] * (n // 2) + ["GB"] * (n - n // 2)
    return pl.DataFrame({"raw": raws, "region": regions})


def test_parallel_parse_equals_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = _pairs(3_000)
    serial = parse_phone_values(pairs, workers=1)
    monkeypatch.setattr(phones, "PARALLEL_MIN", 10)
    parallel = parse_phone_values(pairs, workers=2, chunk=500)
    assert parallel.equals(serial)
    # Every row against the one-value parser, independently.
    for row in serial.head(50).iter_rows(named=True):
        e164, rule, *_rest = parse_phone(row["raw"], row["region"])
        assert (row["e164"], row["rule"]) == (e164, rule)


def _cached_answer(seen: str) -> pl.DataFrame:
    """A phone cache holding ``seen`` with an answer no parse would give (``+CACHED``), which
    proves a value was taken from the cache, not parsed."""
    return pl.DataFrame(
        [
            {
                "raw": seen,
                "region": "US",
                "e164": "+CACHED",
                "rule": None,
                "reason": "",
                "zones": ["America/New_York"],
                "calling_code": 1,
                "line": "+CACHED",
                "number_type": "fixed_or_mobile",
            }
        ],
        schema=PHONE_CACHE_SCHEMA,
    )


def _spy_on_parse(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, str | None]]:
    """The (raw, region) pairs phones.parse_phone is called with from now on."""
    parsed_args: list[tuple[str | None, str | None]] = []
    real = phones.parse_phone

    def spy(raw: str | None, region: str | None) -> phones.Parsed:
        parsed_args.append((raw, region))
        return real(raw, region)

    monkeypatch.setattr(phones, "parse_phone", spy)
    return parsed_args


def test_warm_lookup_parses_only_unseen_values(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = "+1 212 555 0001"
    cache = _cached_answer(seen)
    parsed_args = _spy_on_parse(monkeypatch)
    values = pl.DataFrame(
        {
            "raw": [seen, seen, "+1 212 555 0002", "+1 212 555 0002", None],
            "region": ["US", "US", "US", "US", "US"],
        }
    )
    got, new = lookup_phones(values, cache, workers=1)
    assert sorted(parsed_args, key=str) == sorted(
        [("+1 212 555 0002", "US"), (None, "US")], key=str
    )
    assert new.height == 2
    assert got.height == 3  # distinct (raw, region)
    assert got.filter(pl.col("raw") == seen)["e164"].to_list() == ["+CACHED"]


@pytest.mark.parametrize("cached", [False, True])
def test_join_phones_is_lookup_phones_joined_back(
    monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    seen = "+1 212 555 0001"
    cache = _cached_answer(seen)
    parsed_args = _spy_on_parse(monkeypatch)
    rows = pl.DataFrame(
        {
            "i": [0, 1, 2, 3, 4, 5],
            "phone": [seen, seen, "+1 212 555 0002", "+1 212 555 0002", None, "nope"],
            "country": ["US", "US", "US", "US", "US", None],
        }
    )
    got, new = phones.join_phones(rows, "phone", "country", cache if cached else None, workers=1)
    want_parsed = [("+1 212 555 0002", "US"), (None, "US"), ("nope", None)]
    if not cached:
        want_parsed.append((seen, "US"))
    assert sorted(parsed_args, key=str) == sorted(want_parsed, key=str)
    assert new.height == len(want_parsed)
    looked, _ = lookup_phones(
        rows.select(pl.col("phone").alias("raw"), pl.col("country").alias("region")),
        cache if cached else None,
        workers=1,
    )
    want = rows.join(
        looked.rename({"raw": "phone", "region": "country"}),
        on=["phone", "country"],
        how="left",
        nulls_equal=True,
    )
    assert got.sort("i").equals(want.sort("i"))
    assert got.columns == want.columns
    e164 = got.sort("i")["e164"].to_list()
    assert e164[:2] == (["+CACHED"] * 2 if cached else ["+12125550001"] * 2)


def test_normalize_customers_with_cache_equals_cold() -> None:
    raw = pl.DataFrame(
        {
            "source_row": pl.Series([1, 2, 3, 4], dtype=pl.Int32),
            "customer_id": ["c1", "c2", "c3", "c4"],
            "full_name": ["A", "B", "C", "D"],
            "first_name": [None, None, None, None],
            "last_name": [None, None, None, None],
            "phone": ["+1 212 555 0100", _example("GB", 0), "nope", "+1 212 555 0100"],
            "email": ["a@example.com", "bad@@", None, "d@example.com"],
            "country": ["US", "GB", "US", "US"],
            "postal_code": ["10001", None, None, None],
            "preferred_timezone": [None, "Mars/Base", None, None],
            "locale": ["en-US"] * 4,
            "preferred_channel": [None] * 4,
            "updated_at": ["2026-01-01T00:00:00Z"] * 4,
        }
    ).with_columns(pl.exclude("source_row").cast(pl.String))
    cold, q_cold, new = normalize_customers(raw, return_new_phones=True)  # type: ignore[misc]
    warm, q_warm, new_warm = normalize_customers(  # type: ignore[misc]
        raw, phone_cache=new, return_new_phones=True
    )
    assert new.height == 3
    assert new_warm.height == 0
    assert warm.equals(cold)
    assert q_warm.equals(q_cold)
    by_id = {r["customer_id"]: r for r in cold.iter_rows(named=True)}
    assert by_id["c1"]["phone_e164"] == "+12125550100"
    assert by_id["c1"]["phone_type"] == "fixed_or_mobile"
    assert by_id["c2"]["phone_e164"] is None
    assert by_id["c2"]["phone_type"] == "fixed_line"
    rules = {(r["record_key"], r["rule"]) for r in q_cold.iter_rows(named=True)}
    assert ("c2", "phone_not_mobile") in rules
    assert ("c3", "phone_unparseable") in rules
    assert ("c2", "email_invalid") in rules
    assert any(k == "c2" and r != "phone_not_mobile" and r != "email_invalid" for k, r in rules)


@pytest.mark.parametrize(
    "values",
    [
        ["c1\x1fsms\x1f2026-11-23", "Zoë\x1femail\x1f2026-01-01", "", "日本\x1fsms\x1f2026-12-31"],
        [f"cust-{i}\x1fsms\x1f2026-11-{1 + i % 28:02d}" for i in range(2_000)],
    ],
)
def test_sha256_hex32_is_hashlib(values: list[str]) -> None:
    got = sha256_hex32(pl.Series("k", values)).to_list()
    assert got == [hashlib.sha256(v.encode()).hexdigest()[:32] for v in values]


def test_sha256_hex32_keeps_nulls() -> None:
    assert sha256_hex32(pl.Series("k", ["a", None])).to_list()[1] is None


def test_vectorised_key_is_message_key() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["c1", "Zoë", "c-3"],
            "channel": ["sms", "email", "sms"],
            "local_send_date": [date(2026, 11, 23), date(2026, 1, 1), date(2026, 12, 31)],
        }
    )
    from tasks.eligibility import _message_key_expr

    got = frame.select(_message_key_expr().alias("k"))["k"].to_list()
    want = [message_key(c, ch, d.isoformat()) for c, ch, d in frame.iter_rows()]
    assert got == want


def test_message_keys_are_message_key() -> None:
    from tasks.eligibility import message_keys

    ids = pl.Series(["c1", "Zoë", None, "c-3", ""])
    days = pl.Series(
        [date(2026, 11, 23), date(2026, 1, 1), date(2026, 1, 1), None, date(2026, 12, 31)]
    )
    got = message_keys(ids, days, ("email", "sms")).to_list()
    want = [
        None if c is None or d is None else message_key(c, ch, d.isoformat())
        for ch in ("email", "sms")
        for c, d in zip(ids, days, strict=True)
    ]
    assert got == want
    assert message_keys(ids.clear(), days.clear(), ("sms",)).to_list() == []
