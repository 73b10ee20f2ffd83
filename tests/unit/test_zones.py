"""Zones per customer: geographic preferred_timezone, postal tables, phone, country."""

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.normalize import normalize
from tasks.zones import (
    GEOGRAPHIC_AREAS,
    ZONE_SOURCES,
    canonical_zone,
    check_zone,
    geographic_zone,
    phone_zones,
    postal_zones,
    postal_zones_column,
    resolve_zones,
)
from tests import factories as f

# --- preferred_timezone names --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "zone"),
    [
        ("Asia/Kathmandu", "Asia/Kathmandu"),
        ("  Europe/London\t", "Europe/London"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Asia/Katmandu", "Asia/Kathmandu"),
        ("US/Eastern", "America/New_York"),
        ("US/Hawaii", "Pacific/Honolulu"),
        ("Canada/Newfoundland", "America/St_Johns"),
        ("Mexico/General", "America/Mexico_City"),
        ("Brazil/East", "America/Sao_Paulo"),
        ("Chile/EasterIsland", "Pacific/Easter"),
        ("Australia/West", "Australia/Perth"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("Antarctica/Troll", "Antarctica/Troll"),
        ("Indian/Maldives", "Indian/Maldives"),
    ],
)
def test_geographic_names_are_accepted_and_canonical(raw, zone) -> None:
    assert check_zone(raw) == (zone, None)
    assert geographic_zone(raw) == zone


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("UTC", "UTC/GMT"),
        ("GMT", "UTC/GMT"),
        ("Zulu", "UTC/GMT"),
        ("Etc/GMT+5", "UTC/GMT"),
        ("Etc/UTC", "UTC/GMT"),
        ("EST", "abbreviation"),
        ("MST", "abbreviation"),
        ("HST", "abbreviation"),
        ("CET", "abbreviation"),
        ("IST", "abbreviation"),
        ("PST8PDT", "abbreviation"),
        ("EST5EDT", "abbreviation"),
        ("EST5", "abbreviation"),
        ("Japan", "single-word alias"),
        ("Singapore", "single-word alias"),
        ("Egypt", "single-word alias"),
        ("GB", "single-word alias"),
        ("NZ-CHAT", "single-word alias"),
        ("+05:30", "offset"),
        ("-03", "offset"),
        ("GMT+5", "offset"),
        ("UTC-3", "offset"),
        ("UTC+5:30", "offset"),
        ("Eastern Standard Time", "Windows"),
        ("Pacific Time", "Windows"),
        ("Asia/Kolkatta", "misspelt Asia/Kolkata"),
        ("America/Newyork", "misspelt America/New_York"),
        ("asia/tokyo", "wrong case: Asia/Tokyo"),
        ("EUROPE/LONDON", "wrong case: Europe/London"),
        ("Mars/Olympus", "not in the time zone database"),
        ("nonsense", "not in the time zone database"),
        ("x" * 200, "not in the time zone database"),
    ],
)
def test_non_geographic_names_are_rejected_with_their_kind(raw, kind) -> None:
    zone, reason = check_zone(raw)
    assert zone is None
    assert reason is not None
    assert kind in reason


def test_links_of_abbreviations_to_places_do_not_make_them_places() -> None:
    # tzdata 2024b+ links EST -> America/Panama, MST -> America/Phoenix: rejected by form.
    for name in ("EST", "MST", "HST", "EST5EDT", "CST6CDT", "MST7MDT", "PST8PDT"):
        assert geographic_zone(name) is None


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_blank_is_no_signal_and_no_quarantine(raw) -> None:
    assert check_zone(raw) == (None, None)


# --- postal codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "code", "zones"),
    [
        # US: ZIP, ZIP+4 with and without the dash, a lost leading zero
        ("US", "10001", ("America/New_York",)),
        ("US", "02134", ("America/New_York",)),
        ("US", "02134-1234", ("America/New_York",)),
        ("US", "021341234", ("America/New_York",)),
        ("US", "2134", ("America/New_York",)),
        ("US", "2134-1234", ("America/New_York",)),
        ("US", " 60601 ", ("America/Chicago",)),
        ("US", "96813", ("Pacific/Honolulu",)),
        ("US", "99501", ("America/Anchorage",)),
        ("US", "85001", ("America/Phoenix",)),
        # territories under country US (St_Thomas and Saipan are tzdata links)
        ("US", "96799", ("Pacific/Pago_Pago",)),
        ("US", "00901", ("America/Puerto_Rico",)),
        ("US", "96910", ("Pacific/Guam",)),
        ("US", "00802", ("America/Puerto_Rico",)),
        ("US", "96950", ("Pacific/Guam",)),
        ("PR", "00901", ("America/Puerto_Rico",)),
        # CA: province by first letter
        ("CA", "M5V 2T6", ("America/Toronto",)),
        ("CA", "m5v2t6", ("America/Toronto",)),
        ("CA", "H2X 1Y4", ("America/Toronto",)),
        ("CA", "V6B 1A1", ("America/Vancouver",)),
        ("CA", "T2P 1J9", ("America/Edmonton",)),
        ("CA", "S4P 3Y2", ("America/Regina",)),
        ("CA", "R3C 4T3", ("America/Winnipeg",)),
        ("CA", "B3H 1A1", ("America/Halifax",)),
        ("CA", "C1A 1A1", ("America/Halifax",)),
        ("CA", "E1C 1A1", ("America/Moncton",)),
        ("CA", "A1C 5M2", ("America/St_Johns",)),
        ("CA", "Y1A 1A1", ("America/Whitehorse",)),
        # CA: minority-zone FSAs
        ("CA", "V1G 1A1", ("America/Dawson_Creek",)),
        ("CA", "V1J 1A1", ("America/Dawson_Creek",)),
        ("CA", "S9V 1A1", ("America/Edmonton",)),
        ("CA", "P9N 1A1", ("America/Winnipeg",)),
        ("CA", "P8N 1A1", ("America/Winnipeg",)),
        ("CA", "P8T 1A1", ("America/Winnipeg",)),
        ("CA", "P9A 1A1", ("America/Winnipeg",)),
        ("CA", "P0V 1A1", ("America/Winnipeg",)),
        ("CA", "P0W 1A1", ("America/Winnipeg",)),
        ("CA", "P0X 1A1", ("America/Winnipeg",)),
        ("CA", "P7B 1A1", ("America/Toronto",)),
        ("CA", "G4T 1A1", ("America/Halifax",)),
        ("CA", "A0P 1A1", ("America/Goose_Bay",)),
        ("CA", "A0R 1A1", ("America/Goose_Bay",)),
        ("CA", "A2V 1A1", ("America/Goose_Bay",)),
        ("CA", "A0K 1A1", ("America/St_Johns",)),
        ("CA", "X0B 1A1", ("America/Cambridge_Bay",)),
        ("CA", "X1A 1A1", ("America/Edmonton",)),
        ("CA", "X0E 1A1", ("America/Edmonton",)),
        # CA: split FSAs give every zone (Atikokan / Blanc-Sablon are links)
        ("CA", "P0T 1C0", ("America/Panama", "America/Toronto")),
        ("CA", "G0G 1A1", ("America/Puerto_Rico", "America/Toronto")),
        ("CA", "X0A 1A1", ("America/Iqaluit", "America/Resolute")),
        ("CA", "X0C 1A1", ("America/Panama", "America/Rankin_Inlet")),
        ("CA", "V0C 1A1", ("America/Dawson_Creek", "America/Fort_Nelson", "America/Vancouver")),
        # GB (incl. Northern Ireland), IE, IN, NP
        ("GB", "SW1A 1AA", ("Europe/London",)),
        ("GB", "BT1 1AA", ("Europe/London",)),
        ("GB", "m11ae", ("Europe/London",)),
        ("IE", "D02 X285", ("Europe/Dublin",)),
        ("IE", "D6W 1234", ("Europe/Dublin",)),
        ("IE", "T12K2V0", ("Europe/Dublin",)),
        ("IN", "110001", ("Asia/Kolkata",)),
        ("IN", "400 001", ("Asia/Kolkata",)),
        ("NP", "44600", ("Asia/Kathmandu",)),
        # NZ, Chatham; a lost leading zero
        ("NZ", "6011", ("Pacific/Auckland",)),
        ("NZ", "0600", ("Pacific/Auckland",)),
        ("NZ", "600", ("Pacific/Auckland",)),
        ("NZ", "8942", ("Pacific/Chatham",)),
        # AU by state, specials
        ("AU", "0800", ("Australia/Darwin",)),
        ("AU", "800", ("Australia/Darwin",)),
        ("AU", "0909", ("Australia/Darwin",)),
        ("AU", "0200", ("Australia/Sydney",)),
        ("AU", "2000", ("Australia/Sydney",)),
        ("AU", "1230", ("Australia/Sydney",)),
        ("AU", "2600", ("Australia/Sydney",)),
        ("AU", "3000", ("Australia/Melbourne",)),
        ("AU", "8001", ("Australia/Melbourne",)),
        ("AU", "4000", ("Australia/Brisbane",)),
        ("AU", "9001", ("Australia/Brisbane",)),
        ("AU", "5000", ("Australia/Adelaide",)),
        ("AU", "6000", ("Australia/Perth",)),
        ("AU", "7000", ("Australia/Hobart",)),
        ("AU", "2898", ("Australia/Lord_Howe",)),
        ("AU", "2880", ("Australia/Broken_Hill",)),
        ("AU", "6443", ("Australia/Eucla", "Australia/Perth")),
    ],
)
def test_postal_tables(country, code, zones) -> None:
    assert postal_zones(country, code) == zones


@pytest.mark.parametrize(
    ("country", "code"),
    [
        ("US", "1234567"),  # neither 5, 9 nor a lost-zero 4 / 4+4
        ("US", "21341234"),  # 8 digits without the dash: not a lost zero we can tell
        ("US", "ABCDE"),
        ("US", "00000"),  # not a ZIP
        ("US", "09001"),  # military APO/FPO: the package has no zone
        ("CA", "D1A 1A1"),  # D is not a first letter
        ("CA", "M5V"),  # FSA alone
        ("GB", "12345"),
        ("IE", "B12 3456"),  # B is not a routing-key letter
        ("IN", "012345"),
        ("NP", "4460"),
        ("NZ", "12345"),
        ("AU", "12345"),
        ("AU", "0100"),  # 01xx is not a state range
        ("DE", "10115"),  # no table for the country
        ("FR", "75001"),
        (None, "10001"),
        ("US", None),
        ("US", ""),
    ],
)
def test_postal_code_that_does_not_match_is_no_signal(country, code) -> None:
    assert postal_zones(country, code) is None


_POSTAL_CHARS = (
    "0123456789" * 3 + "ABCEGHJKMNPRSTVXYZDFILOQUW" + "abcegh" + " -\t\n\u00a0\u0663\u00df"
)
_CODES = st.one_of(
    st.text(alphabet=_POSTAL_CHARS, max_size=12),
    st.from_regex(r"\A ?[0-9]{3,5}(-?[0-9]{4})? ?\Z"),
    st.from_regex(r"\A[A-Z][0-9][A-Z] ?[0-9][A-Z][0-9]\Z"),
    st.from_regex(r"\A[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}\Z"),
    st.from_regex(r"\A[A-Z][0-9W]{2} ?[0-9A-Z]{4}\Z"),
    st.text(max_size=20),
    st.none(),
)
_POSTAL_COUNTRIES = ("US", "PR", "GU", "VI", "AS", "MP", "CA", "GB", "IE", "IN", "NP", "NZ", "AU")
_COUNTRIES = st.sampled_from([*_POSTAL_COUNTRIES, "DE", "FR", "ca", "XX", " us", ""]).map(
    lambda c: c or None
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_COUNTRIES, _CODES), min_size=1, max_size=30))
def test_postal_zones_column_is_postal_zones(pairs) -> None:
    frame = pl.DataFrame(pairs, schema={"country": pl.String, "code": pl.String}, orient="row")
    found = postal_zones_column(frame, "country", "code").to_list()
    assert found == ["|".join(postal_zones(c, p) or ()) for c, p in pairs]


def test_postal_zones_column_on_every_table_code() -> None:
    from tasks.zones import _zip_table

    zips = sorted(_zip_table())[::7]
    pairs = [("US", z) for z in zips] + [("PR", z[:4] + "-1234") for z in zips[:500]]
    pairs += [("AU", f"{n:04d}") for n in range(0, 10000, 3)] + [
        ("NZ", f"{n:03d}") for n in range(1000)
    ]
    pairs += [
        ("CA", f"{a}{d}{c} 1A1") for a in "ABCEGHJKLMNPRSTVXY" for d in "08" for c in "ABGJNPVZ"
    ]
    frame = pl.DataFrame(pairs, schema={"country": pl.String, "code": pl.String}, orient="row")
    found = postal_zones_column(frame, "country", "code").to_list()
    assert found == ["|".join(postal_zones(c, p) or ()) for c, p in pairs]


# --- phone ------------------------------------------------------------------------------------


def test_phone_unknown_is_no_signal_but_a_calling_code_wide_answer_is_kept() -> None:
    assert phone_zones(("Etc/Unknown",)) == ()
    from phonenumbers.tzdata import TIMEZONE_DATA

    every_plus_one = tuple(TIMEZONE_DATA["1"])
    kept = phone_zones(every_plus_one, 1)
    # never replaced by the country's zones: every zone of the answer stays a candidate
    assert len(kept) > 20
    assert {canonical_zone(z) for z in every_plus_one if z != "Etc/Unknown"} == set(kept)
    assert phone_zones(("America/Halifax", "America/St_Johns"), 1) == (
        "America/Halifax",
        "America/St_Johns",
    )
    # a single-zone answer that is also the calling code's list is informative
    assert phone_zones(("Asia/Katmandu",), 977) == ("Asia/Kathmandu",)


# --- precedence, through normalize ------------------------------------------------------------


def _customer_row(**values):
    n = normalize(f.extracted([f.customer(**values)], []))
    return n.customers.row(0, named=True), n.quarantine


@pytest.mark.parametrize(
    ("values", "zones", "source"),
    [
        (
            {"preferred_timezone": "Asia/Tokyo", "postal_code": "96813", "country": "US"},
            ["Asia/Tokyo"],
            "preferred",
        ),
        (
            {"preferred_timezone": None, "postal_code": "96813", "phone": "+1 212 555 0143"},
            ["Pacific/Honolulu"],
            "postal_code",
        ),
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+1 808 555 0100"},
            ["Pacific/Honolulu"],
            "phone",
        ),
        (
            {"preferred_timezone": None, "postal_code": "junk", "phone": "+1 808 555 0100"},
            ["Pacific/Honolulu"],
            "phone",
        ),
        (
            {"preferred_timezone": None, "postal_code": None, "phone": None, "country": "NP"},
            ["Asia/Kathmandu"],
            "country",
        ),
        (
            {"preferred_timezone": None, "postal_code": "10115", "phone": None, "country": "DE"},
            ["Europe/Berlin", "Europe/Zurich"],  # zone.tab's Europe/Busingen links to Zurich
            "country",
        ),
        # territories under country US, via the phone number (no postal code)
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+1 671 688 1234"},
            ["Pacific/Guam"],
            "phone",
        ),
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+1 787 234 5678"},
            ["America/Puerto_Rico"],
            "phone",
        ),
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+1 340 690 1234"},
            ["America/Puerto_Rico"],
            "phone",
        ),
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+1 670 287 1234"},
            ["Pacific/Guam"],
            "phone",
        ),
        # territories under country US, via the ZIP
        (
            {"preferred_timezone": None, "postal_code": "96799", "phone": None},
            ["Pacific/Pago_Pago"],
            "postal_code",
        ),
        (
            {"preferred_timezone": None, "postal_code": "96910", "phone": None},
            ["Pacific/Guam"],
            "postal_code",
        ),
        # a signal is never intersected with the country's list: a +44 number stays London
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+44 7400 123456"},
            ["Europe/London"],
            "phone",
        ),
        # an American Samoa mobile: phonenumbers only knows '+1': its whole answer is the
        # signal (the intersection is then empty, see test_eligibility), never the country's
        (
            {"preferred_timezone": None, "postal_code": None, "phone": "+1 684 733 1234"},
            "phonenumbers-answer",
            "phone",
        ),
        (
            {
                "preferred_timezone": None,
                "postal_code": None,
                "phone": "+1 709 555 0100",
                "country": "CA",
            },
            ["America/Halifax", "America/St_Johns"],
            "phone",
        ),
    ],
    ids=[
        "preferred-beats-postal",
        "postal-beats-phone",
        "phone-when-no-postal",
        "phone-when-postal-malformed",
        "country-last",
        "country-without-postal-table",
        "guam-phone",
        "puerto-rico-phone",
        "usvi-phone",
        "northern-marianas-phone",
        "american-samoa-zip",
        "guam-zip",
        "foreign-number-not-intersected",
        "calling-code-only-number",
        "709-two-zones",
    ],
)
def test_signal_precedence(values, zones, source) -> None:
    row, _ = _customer_row(**values)
    assert row["zone_source"] == source
    if zones == "phonenumbers-answer":  # what phonenumbers says, canonicalised, filtered
        import phonenumbers
        from phonenumbers import timezone as pn_timezone

        answer = pn_timezone.time_zones_for_number(phonenumbers.parse(values["phone"]))
        zones = sorted({geographic_zone(z) for z in answer} - {None})
    if zones is None:  # the country's own list
        from tasks.zones import country_zones

        zones = sorted({geographic_zone(z) for z in country_zones(row["country"])})
    assert row["time_zones"] == zones


@pytest.mark.parametrize(
    "name",
    [
        "UTC",
        "Etc/GMT-3",
        "EST",
        "EST5EDT",
        "IST",
        "Japan",
        "+05:30",
        "GMT+5",
        "Eastern Standard Time",
        "Asia/Kolkatta",
        "asia/kolkata",
        "Mars/Olympus",
    ],
)
def test_rejected_zone_is_a_field_row_and_the_next_signal_decides(name) -> None:
    row, quarantine = _customer_row(
        preferred_timezone=name, country="IN", postal_code="110001", phone=None
    )
    assert (row["time_zones"], row["zone_source"]) == (["Asia/Kolkata"], "postal_code")
    fields = quarantine.filter(pl.col("scope") == "field")
    assert fields["rule"].to_list() == ["timezone_not_geographic"]
    assert fields["reason"][0].startswith("preferred_timezone: ")
    assert json.loads(fields["raw_values"][0])["preferred_timezone"] == name
    assert quarantine.filter(pl.col("scope") == "row").height == 0


def test_no_signal_at_all_is_unknown() -> None:
    assert resolve_zones("EST", "ZZ", "10001", ()) == ((), "unknown")
    assert resolve_zones(None, None, None, ("Etc/Unknown",)) == ((), "unknown")


def _is_geographic(zone: str) -> bool:
    return geographic_zone(zone) == zone and zone.split("/")[0] in GEOGRAPHIC_AREAS


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=40)),
    st.sampled_from(["US", "CA", "GB", "IE", "IN", "NP", "NZ", "AU", "DE", "ZZ", None]),
    st.one_of(st.none(), st.text(max_size=14), st.from_regex(r"[0-9A-Z \-]{3,10}")),
)
def test_any_input_never_crashes_and_gives_geographic_zones_or_unknown(
    preferred, country, postal
) -> None:
    zones, source = resolve_zones(preferred, country, postal, ())
    assert source in ZONE_SOURCES
    if source == "unknown":
        assert zones == ()
    else:
        assert zones
        assert all(_is_geographic(z) for z in zones)
        assert list(zones) == sorted(set(zones))


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=30), st.text(max_size=12))
def test_any_input_through_normalize_keeps_the_row(preferred, postal) -> None:
    n = normalize(f.extracted([f.customer(preferred_timezone=preferred, postal_code=postal)], []))
    assert n.customers.height == 1
    row = n.customers.row(0, named=True)
    assert row["zone_source"] in ZONE_SOURCES
    assert all(_is_geographic(z) for z in row["time_zones"])
    rules = set(n.quarantine["rule"].to_list())
    assert rules <= {"timezone_not_geographic"}


def test_unknown_us_zip_takes_every_zone_of_its_three_digit_area() -> None:
    import zipcodes

    known = {z["zip_code"] for z in zipcodes.list_all()}
    for prefix in ("951", "863", "967"):
        unknown = next(f"{prefix}{n:02d}" for n in range(100) if f"{prefix}{n:02d}" not in known)
        expected = {
            geographic_zone(z["timezone"])
            for z in zipcodes.list_all()
            if z["zip_code"].startswith(prefix) and geographic_zone(z["timezone"] or "")
        }
        assert set(postal_zones("US", unknown) or ()) == expected, prefix
    assert postal_zones("US", "00000") is None  # no known ZIP in the area: no signal
